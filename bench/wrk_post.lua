-- wrk script for make bench: POSTs the body and headers that bench/bench.c wrote for this run
-- (the same as libwebhook sends), to "/" or, with WH_BENCH_PATHS=N, to /ep/0 .. /ep/N-1 in turn.
local dir = os.getenv("WH_BENCH_DIR")
local f = assert(io.open(dir .. "/body.json", "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
for line in io.lines(dir .. "/headers.txt") do
    local name, value = line:match("^([^:]+):%s*(.*)$")
    if name then
        wrk.headers[name] = value
    end
end

local paths = tonumber(os.getenv("WH_BENCH_PATHS") or "0")
if paths > 0 then
    local i = 0
    request = function()
        i = (i + 1) % paths
        return wrk.format(nil, "/ep/" .. i)
    end
end
