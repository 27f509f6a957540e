# libwebhook — see README.md. `make`, `make check`, `make demo`, `make bench`, `make install`.
VERSION := $(shell sed -n 's/^\#define WH_VERSION_STRING "\(.*\)"/\1/p' include/webhook/webhook.h)
MAJOR   := $(firstword $(subst ., ,$(VERSION)))
# the soname's number: raised whenever the binary interface changes (see libwebhook(7), "ABI:
# how structs grow"), independently of the version
ABI     := $(shell sed -n 's/^\#define WH_ABI_VERSION \([0-9]*\)/\1/p' include/webhook/webhook.h)
PREFIX  ?= /usr/local
DESTDIR ?=
LIBDIR  ?= $(PREFIX)/lib
INCDIR  ?= $(PREFIX)/include
MANDIR  ?= $(PREFIX)/share/man
BINDIR  ?= $(PREFIX)/bin
CMAKEDIR ?= $(LIBDIR)/cmake/libwebhook

CC      ?= cc
PKGS    := libcurl libcrypto libcjson sqlite3 libpq
CFLAGS  ?= -O2 -g
WFLAGS  := -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE
DEPCFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
DEPLIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread
TESTLIBS  = $(shell pkg-config --libs check libmicrohttpd 2>/dev/null)
SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

LIB_SRCS  := $(sort $(wildcard lib/*.c))
LIB_HDRS  := $(wildcard lib/*.h)
LIB_OBJS  := $(LIB_SRCS:lib/%.c=build/obj/%.o)
ASAN_OBJS := $(LIB_SRCS:lib/%.c=build/asan/%.o)
SUPPORT_SRCS := $(sort $(wildcard tests/support/*.c))
TEST_SRCS := $(sort $(wildcard tests/test_*.c))
TESTS     := $(TEST_SRCS:tests/%.c=build/tests/%)
ASAN_TESTS := $(TEST_SRCS:tests/%.c=build/asan-tests/%)
CTL       := build/bin/webhookctl
SONAME    := libwebhook.so.$(ABI)
SHLIB     := lib/libwebhook.so.$(VERSION)
STLIB     := lib/libwebhook.a
# The second line: what `pkg-config --static --libs libwebhook` names through libcurl's
# Libs.private (-lnghttp2 -lidn2 -lrtmp -lssh2 -lpsl -lgssapi_krb5 -lldap -llber -lzstd
# -lbrotlidec -lz), which libcurl4-openssl-dev does not pull in.
DEB_PACKAGES := build-essential pkg-config libcurl4-openssl-dev libssl-dev libcjson-dev \
                libnghttp2-dev libidn2-dev librtmp-dev libssh2-1-dev libpsl-dev libkrb5-dev \
                libldap-dev libzstd-dev libbrotli-dev zlib1g-dev \
                libsqlite3-dev check libmicrohttpd-dev valgrind locales man-db nginx-light
# the loop adapters' tests and examples; the CMake package's test
DEB_PACKAGES += libuv1-dev libevent-dev libev-dev cmake
# the metrics tests and example: Prometheus's promtool checks the text, curl scrapes it
DEB_PACKAGES += prometheus curl
# the PostgreSQL store (libpq), and the throwaway server its tests start (tests/support/pg.c)
DEB_PACKAGES += libpq-dev postgresql

.PHONY: all deps need-deps need-test-libs need-test-deps need-static-deps check test test-asan demo bench install uninstall clean
.DELETE_ON_ERROR:

all: need-deps $(STLIB) $(SHLIB) pkgconfig/libwebhook.pc $(CTL)

# Install the Debian packages and the npm test dependency (as root), or say how.
deps:
	@if [ "$$(id -u)" = 0 ]; then \
	  echo "apt-get install -y $(DEB_PACKAGES)"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y $(DEB_PACKAGES) >/dev/null || \
	    { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y $(DEB_PACKAGES) >/dev/null; }; \
	  command -v node >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y nodejs npm >/dev/null; \
	else \
	  echo "as root, run: apt-get update && apt-get install -y $(DEB_PACKAGES) nodejs npm"; exit 1; \
	fi
	cd tests/interop && npm ci --no-audit --no-fund --loglevel=error

need-deps:
	@pkg-config --exists $(PKGS) || $(MAKE) --no-print-directory deps

# what the tests, the receiver and the benchmark link besides the library's own
need-test-libs: need-deps
	@pkg-config --exists check libmicrohttpd || $(MAKE) --no-print-directory deps

# nginx: the HTTP/2 receiver of test_http2 (run as the calling user, from /usr/sbin);
# PostgreSQL's server: the throwaway cluster of test_pg
need-test-deps: need-test-libs
	@[ -f tests/interop/node_modules/standardwebhooks/package.json ] && { command -v nginx || [ -x /usr/sbin/nginx ]; } >/dev/null && \
	  ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || \
	  $(MAKE) --no-print-directory deps

# Linking statically needs the -dev packages of libcurl's own dependencies: try it.
need-static-deps: need-deps
	@printf 'int main(void) { return 0; }\n' | $(CC) -x c - -o /dev/null \
	    $$(pkg-config --static --libs $(PKGS)) 2>/dev/null || $(MAKE) --no-print-directory deps

build/obj/%.o: lib/%.c $(LIB_HDRS) include/webhook/webhook.h | need-deps
	@mkdir -p $(@D)
	$(CC) $(WFLAGS) $(CPPFLAGS) $(CFLAGS) -fPIC -fvisibility=hidden -Iinclude $(DEPCFLAGS) -c $< -o $@

build/asan/%.o: lib/%.c $(LIB_HDRS) include/webhook/webhook.h | need-deps
	@mkdir -p $(@D)
	$(CC) $(WFLAGS) -O1 -g $(SAN) -fvisibility=hidden -Iinclude $(DEPCFLAGS) -c $< -o $@

$(STLIB): $(LIB_OBJS)
	rm -f $@ && ar rcs $@ $^

$(SHLIB): $(LIB_OBJS) lib/libwebhook.map
	$(CC) $(CFLAGS) $(LDFLAGS) -shared -Wl,-soname,$(SONAME) -Wl,--version-script=lib/libwebhook.map -o $@ $(LIB_OBJS) $(DEPLIBS)
	ln -sf libwebhook.so.$(VERSION) lib/$(SONAME)
	ln -sf $(SONAME) lib/libwebhook.so

build/asan/libwebhook.a: $(ASAN_OBJS)
	rm -f $@ && ar rcs $@ $^

# webhookctl lives under lib/webhookctl/ so that the library's lib/*.c glob leaves it out;
# it links the static library for the internal store calls. An asan+ubsan build of it
# (make build/asan-bin/webhookctl) runs the tests with WH_WEBHOOKCTL=build/asan-bin/webhookctl.
CTL_SRCS := $(sort $(wildcard lib/webhookctl/*.c))
CTL_HDRS := $(wildcard lib/webhookctl/*.h)
$(CTL): $(CTL_SRCS) $(CTL_HDRS) $(LIB_HDRS) include/webhook/webhook.h $(STLIB)
	@mkdir -p $(@D)
	$(CC) $(WFLAGS) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -Iinclude -Ilib $(DEPCFLAGS) -o $@ $(CTL_SRCS) $(STLIB) $(DEPLIBS)

build/asan-bin/webhookctl: $(CTL_SRCS) $(CTL_HDRS) $(LIB_HDRS) include/webhook/webhook.h build/asan/libwebhook.a
	@mkdir -p $(@D)
	$(CC) $(WFLAGS) -O1 -g $(SAN) -Iinclude -Ilib $(DEPCFLAGS) -o $@ $(CTL_SRCS) build/asan/libwebhook.a $(DEPLIBS)

# The .pc names the install's directories: `make install` writes it again from the .in with
# the PREFIX/LIBDIR/INCDIR it is given, whatever `make` was run with.
# libpq is named in Libs.private rather than Requires.private: Debian's libpq.pc lists static
# libraries (-lpgcommon -lpgport) that libpq-dev does not ship, so `pkg-config --static` would
# name libraries that are not there; its include directory is for <webhook/webhook_pg.h>.
PC_SED = sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCDIR@|$(INCDIR)|' \
             -e 's|@VERSION@|$(VERSION)|' -e 's|@PQ_CFLAGS@|$(shell pkg-config --cflags libpq 2>/dev/null)|' \
             pkgconfig/libwebhook.pc.in

pkgconfig/libwebhook.pc: pkgconfig/libwebhook.pc.in include/webhook/webhook.h
	$(PC_SED) > $@

build/tests/%: tests/%.c $(SUPPORT_SRCS) tests/support/*.h $(STLIB) | need-test-libs
	@mkdir -p $(@D)
	$(CC) $(WFLAGS) $(CFLAGS) -Iinclude -Ilib -Itests/support $(DEPCFLAGS) -o $@ $< $(SUPPORT_SRCS) $(STLIB) $(TESTLIBS) $(DEPLIBS)

build/asan-tests/%: tests/%.c $(SUPPORT_SRCS) tests/support/*.h build/asan/libwebhook.a | need-test-libs
	@mkdir -p $(@D)
	$(CC) $(WFLAGS) -O1 -g $(SAN) -Iinclude -Ilib -Itests/support $(DEPCFLAGS) -o $@ $< $(SUPPORT_SRCS) build/asan/libwebhook.a $(TESTLIBS) $(DEPLIBS)

# The examples; `make demo` runs the engine demo against the example receiver on 127.0.0.1.
build/examples/receiver: examples/receiver.c include/webhook/webhook.h $(STLIB) | need-test-libs
	@mkdir -p $(@D)
	$(CC) $(WFLAGS) $(CFLAGS) -Iinclude $(DEPCFLAGS) $(shell pkg-config --cflags libmicrohttpd 2>/dev/null) \
	    -o $@ $< $(STLIB) $(shell pkg-config --libs libmicrohttpd 2>/dev/null) $(DEPLIBS)

build/examples/engine_demo: examples/engine_demo.c include/webhook/webhook.h $(STLIB)
	@mkdir -p $(@D)
	$(CC) $(WFLAGS) $(CFLAGS) -Iinclude $(DEPCFLAGS) -o $@ $< $(STLIB) $(DEPLIBS)

demo: all build/examples/receiver build/examples/engine_demo
	bash examples/run_demo.sh

# `make bench` runs every scenario of BENCHMARKS.md (a few minutes, loopback only; installs
# nginx, wrk and PostgreSQL's server as root); `make check` only builds the program so that it never rots.
# The PostgreSQL rows start a throwaway server the way test_pg does (tests/support/pg.c).
BENCH_SUPPORT := tests/support/pki.c tests/support/pg.c bench/bare_curl.c
build/bench/bench: bench/bench.c bench/bare_curl.h $(BENCH_SUPPORT) tests/support/pki.h tests/support/pg.h include/webhook/webhook.h $(STLIB) | need-test-libs
	@mkdir -p $(@D)
	$(CC) $(WFLAGS) $(CFLAGS) -Iinclude -Itests/support $(DEPCFLAGS) $(shell pkg-config --cflags libmicrohttpd 2>/dev/null) \
	    -o $@ $< $(BENCH_SUPPORT) $(STLIB) $(shell pkg-config --libs libmicrohttpd 2>/dev/null) $(DEPLIBS) -lm

bench: all build/bench/bench
	bash bench/run.sh

# Each test program is a Check suite; CK_FORK gives each test its own process.
test: all need-test-deps $(TESTS) $(CTL)
	@fail=0; for t in $(TESTS); do echo "== $$t"; WH_TEST_ROOT=$(CURDIR) $$t || fail=1; done; exit $$fail

test-asan: need-test-deps $(ASAN_TESTS) $(CTL)
	@fail=0; for t in $(ASAN_TESTS); do echo "== $$t (asan+ubsan)"; \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  WH_TEST_ROOT=$(CURDIR) CK_TIMEOUT_MULTIPLIER=3 $$t || fail=1; done; exit $$fail

# ---- beyond asan+ubsan: ThreadSanitizer, valgrind, the fuzz corpus (see SECURITY.md) ----
# ThreadSanitizer: the library and the threaded tests (test_delivery, test_store) built in
# build/tsan/, at full load. Under valgrind the 4 x 10,000-event test of test_delivery is scaled
# down with WH_TEST_EMITS_PER_THREAD (default 10000); the behaviour under test (4 emitting
# threads, 1 driver, each event delivered exactly once) is the same.
TSAN       := -fsanitize=thread -fno-omit-frame-pointer
TSAN_OBJS  := $(LIB_SRCS:lib/%.c=build/tsan/%.o)
TSAN_TESTS := build/tsan/tests/test_delivery build/tsan/tests/test_store build/tsan/tests/test_sink_stored

build/tsan/%.o: lib/%.c $(LIB_HDRS) include/webhook/webhook.h | need-deps
	@mkdir -p $(@D)
	$(CC) $(WFLAGS) -O1 -g $(TSAN) -fvisibility=hidden -Iinclude $(DEPCFLAGS) -c $< -o $@

build/tsan/libwebhook.a: $(TSAN_OBJS)
	rm -f $@ && ar rcs $@ $^

build/tsan/tests/%: tests/%.c $(SUPPORT_SRCS) tests/support/*.h build/tsan/libwebhook.a | need-test-libs
	@mkdir -p $(@D)
	$(CC) $(WFLAGS) -O1 -g $(TSAN) -Iinclude -Ilib -Itests/support $(DEPCFLAGS) -o $@ $< $(SUPPORT_SRCS) build/tsan/libwebhook.a $(TESTLIBS) $(DEPLIBS)

test-tsan: need-test-deps $(TSAN_TESTS)
	@fail=0; for t in $(TSAN_TESTS); do echo "== $$t (tsan)"; \
	  TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
	  WH_TEST_ROOT=$(CURDIR) CK_TIMEOUT_MULTIPLIER=4 $$t || fail=1; done; exit $$fail

# valgrind: the delivery tests once, in one process (CK_FORK=no), bounded by `timeout`.
test-valgrind: need-test-deps build/tests/test_delivery
	@command -v valgrind >/dev/null || $(MAKE) --no-print-directory deps
	@echo "== build/tests/test_delivery (valgrind)"
	@CK_FORK=no WH_TEST_EMITS_PER_THREAD=1000 WH_TEST_ROOT=$(CURDIR) timeout 900 valgrind -q --leak-check=full \
	  --error-exitcode=1 build/tests/test_delivery

# Fuzzing. `make check` replays the committed corpus tests/fuzz/corpus/<target>/ with a
# plain main (tests/fuzz/replay.c) under asan+ubsan, so that a fixed crash stays fixed.
# `make fuzz` builds the libFuzzer targets with clang and runs each for FUZZ_TIME seconds;
# new inputs go to build/fuzz/corpus/<target>/, crashes to build/fuzz/crashes/<target>/.
FUZZ_TARGETS := $(sort $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_REPLAY  := $(FUZZ_TARGETS:%=build/fuzz-replay/fuzz_%)
FUZZ_BINS    := $(FUZZ_TARGETS:%=build/fuzz/bin/fuzz_%)
FUZZ_OBJS    := $(LIB_SRCS:lib/%.c=build/fuzz/obj/%.o)
FUZZ_CC      ?= clang
FUZZ_TIME    ?= 30
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer

build/fuzz-replay/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c tests/fuzz/fuzz.h build/asan/libwebhook.a
	@mkdir -p $(@D)
	$(CC) $(WFLAGS) -O1 -g $(SAN) -Iinclude -Ilib $(DEPCFLAGS) -o $@ $< tests/fuzz/replay.c build/asan/libwebhook.a $(DEPLIBS)

test-fuzz-replay: need-deps $(FUZZ_REPLAY)
	@fail=0; for t in $(FUZZ_TARGETS); do \
	  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  build/fuzz-replay/fuzz_$$t tests/fuzz/corpus/$$t || fail=1; done; exit $$fail

build/fuzz/obj/%.o: lib/%.c $(LIB_HDRS) include/webhook/webhook.h | need-deps
	@command -v $(FUZZ_CC) >/dev/null || { echo "make fuzz needs clang (apt-get install clang)"; exit 1; }
	@mkdir -p $(@D)
	$(FUZZ_CC) $(WFLAGS) -O1 -g $(FUZZ_SAN) -fsanitize=fuzzer-no-link -fvisibility=hidden -Iinclude $(DEPCFLAGS) -c $< -o $@

build/fuzz/libwebhook.a: $(FUZZ_OBJS)
	rm -f $@ && ar rcs $@ $^

build/fuzz/bin/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h build/fuzz/libwebhook.a
	@mkdir -p $(@D)
	$(FUZZ_CC) $(WFLAGS) -O1 -g $(FUZZ_SAN) -fsanitize=fuzzer -Iinclude -Ilib $(DEPCFLAGS) -o $@ $< build/fuzz/libwebhook.a $(DEPLIBS)

fuzz: $(FUZZ_BINS)
	@fail=0; for t in $(FUZZ_TARGETS); do \
	  mkdir -p build/fuzz/corpus/$$t build/fuzz/crashes/$$t; echo "== fuzz $$t ($(FUZZ_TIME) s)"; \
	  build/fuzz/bin/fuzz_$$t -max_total_time=$(FUZZ_TIME) -timeout=10 -rss_limit_mb=2048 \
	    -print_final_stats=1 -artifact_prefix=build/fuzz/crashes/$$t/ \
	    build/fuzz/corpus/$$t tests/fuzz/corpus/$$t || fail=1; \
	done; exit $$fail

# `make install` into a staging folder under another PREFIX, a program built against it with
# pkg-config (shared, --static, and libwebhook.a) and run, then `make uninstall`
# (tests/install/check_install.sh).
test-install: all need-static-deps
	CC="$(CC)" MAKE="$(MAKE)" bash tests/install/check_install.sh

# Every man page renders from any directory, every public function has one, and the
# wh_fd(3) libuv example compiles and runs (tests/docs/check_docs.sh).
test-docs: need-deps $(STLIB)
	@command -v man >/dev/null && pkg-config --exists libuv || $(MAKE) --no-print-directory deps
	CC="$(CC)" bash tests/docs/check_docs.sh

# Allocation failure (tests/nomem/nomem.c): each main path of the API runs with its N-th
# allocation failing (the library's own, cJSON's and SQLite's), for every N until a run meets
# none, under asan+ubsan and LeakSanitizer. A few thousand runs; bounded by `timeout`.
NOMEM_WRAP := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup,--wrap=strndup

build/nomem/nomem: tests/nomem/nomem.c include/webhook/webhook.h build/asan/libwebhook.a
	@mkdir -p $(@D)
	$(CC) $(WFLAGS) -O1 -g $(SAN) -Iinclude $(DEPCFLAGS) $(NOMEM_WRAP) -o $@ $< build/asan/libwebhook.a $(DEPLIBS)

test-nomem: need-deps build/nomem/nomem
	@echo "== build/nomem/nomem (allocation failure, asan+ubsan)"
	@ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  timeout 900 build/nomem/nomem

.PHONY: test-tsan test-valgrind test-fuzz-replay fuzz test-install test-docs test-nomem

check: all build/bench/bench
	@$(MAKE) --no-print-directory test
	@$(MAKE) --no-print-directory test-asan
	@$(MAKE) --no-print-directory test-fuzz-replay
	@$(MAKE) --no-print-directory test-tsan
	@$(MAKE) --no-print-directory test-valgrind
	@$(MAKE) --no-print-directory test-nomem
	@$(MAKE) --no-print-directory test-install
	@$(MAKE) --no-print-directory test-docs
	@echo "make check: all suites passed (plain, asan+ubsan, fuzz corpus, tsan, valgrind, allocation failure, install, docs)"

# install records the directories it creates (parents included, without DESTDIR) in
# $(WHDATADIR)/installed-dirs; uninstall removes those again once they are empty, and no other.
WHDATADIR ?= $(PREFIX)/share/libwebhook
INSTALL_DIRS = $(INCDIR)/webhook/adapters $(LIBDIR)/pkgconfig $(CMAKEDIR) $(BINDIR) \
               $(MANDIR)/man1 $(MANDIR)/man3 $(MANDIR)/man7 $(WHDATADIR)

install: all
	@made=; for d in $(INSTALL_DIRS); do \
	  p="$(DESTDIR)$$d"; \
	  while [ -n "$$p" ] && [ ! -d "$$p" ]; do \
	    case "$$p" in "$(DESTDIR)"*) made="$$made $${p#"$(DESTDIR)"}/";; *) break;; esac; \
	    p="$${p%/*}"; \
	  done; \
	  install -d "$(DESTDIR)$$d" || exit 1; \
	done; \
	for d in $$made; do echo "$${d%/}"; done >> "$(DESTDIR)$(WHDATADIR)/installed-dirs"
	install -m 644 include/webhook/*.h $(DESTDIR)$(INCDIR)/webhook/
	install -m 644 $(STLIB) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(SHLIB) $(DESTDIR)$(LIBDIR)/
	ln -sf libwebhook.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libwebhook.so
	$(PC_SED) > $(DESTDIR)$(LIBDIR)/pkgconfig/libwebhook.pc
	chmod 644 $(DESTDIR)$(LIBDIR)/pkgconfig/libwebhook.pc
	@for m in man/man3/*.3; do \
	  if [ -L "$$m" ]; then ln -sf "$$(readlink "$$m")" "$(DESTDIR)$(MANDIR)/man3/$${m##*/}"; \
	  else install -m 644 "$$m" "$(DESTDIR)$(MANDIR)/man3/"; fi || exit 1; \
	done
	install -m 755 $(CTL) $(DESTDIR)$(BINDIR)/
	install -m 644 man/man1/webhookctl.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 644 man/man7/libwebhook.7 $(DESTDIR)$(MANDIR)/man7/
	install -m 644 include/webhook/adapters/*.h $(DESTDIR)$(INCDIR)/webhook/adapters/
	$(call cmake_config,cmake/libwebhookConfig.cmake.in,$(DESTDIR)$(CMAKEDIR)/libwebhookConfig.cmake)
	$(call cmake_config,cmake/libwebhookConfigVersion.cmake.in,$(DESTDIR)$(CMAKEDIR)/libwebhookConfigVersion.cmake)

uninstall:
	rm -rf $(DESTDIR)$(INCDIR)/webhook
	rm -f $(DESTDIR)$(LIBDIR)/libwebhook.a $(DESTDIR)$(LIBDIR)/libwebhook.so* \
	      $(DESTDIR)$(LIBDIR)/pkgconfig/libwebhook.pc
	cd man/man3 && for m in *.3; do rm -f $(DESTDIR)$(MANDIR)/man3/$$m; done
	rm -f $(DESTDIR)$(BINDIR)/webhookctl $(DESTDIR)$(MANDIR)/man1/webhookctl.1 \
	      $(DESTDIR)$(MANDIR)/man7/libwebhook.7
	rm -rf $(DESTDIR)$(CMAKEDIR)
	@m="$(DESTDIR)$(WHDATADIR)/installed-dirs"; [ ! -f "$$m" ] || { \
	  dirs=$$(sort -ru "$$m"); root=$$(grep -cx '' "$$m" || true); rm -f "$$m"; \
	  for d in $$dirs; do rmdir "$(DESTDIR)$$d" 2>/dev/null || true; done; \
	  [ "$$root" = 0 ] || rmdir "$(DESTDIR)" 2>/dev/null || true; }

# ---- fitting into the host: loop adapters, the examples, README's snippet, the CMake package ----
# Each header-only adapter (include/webhook/adapters/) has a test program and an example that
# link its loop's library; libev ships no pkg-config file.
LOOP_LIBS_libuv    = $(shell pkg-config --libs libuv 2>/dev/null)
LOOP_LIBS_libevent = $(shell pkg-config --libs libevent 2>/dev/null)
LOOP_LIBS_libev    = -lev
LOOP_TESTS := $(foreach l,libuv libevent libev,build/tests/test_loop_$(l) build/asan-tests/test_loop_$(l))
EXAMPLES   := $(addprefix build/examples/,receiver engine_demo drive_poll drive_epoll drive_thread \
                loop_libuv loop_libevent loop_libev metrics_http)

need-loop-deps:
	@{ pkg-config --exists libuv libevent && echo '#include <ev.h>' | $(CC) -E -x c - >/dev/null 2>&1; } || \
	  $(MAKE) --no-print-directory deps

$(LOOP_TESTS): include/webhook/adapters/*.h | need-loop-deps
build/tests/test_loop_libuv build/asan-tests/test_loop_libuv: TESTLIBS += $(LOOP_LIBS_libuv)
build/tests/test_loop_libevent build/asan-tests/test_loop_libevent: TESTLIBS += $(LOOP_LIBS_libevent)
build/tests/test_loop_libev build/asan-tests/test_loop_libev: TESTLIBS += $(LOOP_LIBS_libev)

build/examples/drive_%: examples/drive_%.c examples/example.h include/webhook/webhook.h $(STLIB)
	@mkdir -p $(@D)
	$(CC) $(WFLAGS) $(CFLAGS) -Iinclude $(DEPCFLAGS) -o $@ $< $(STLIB) $(DEPLIBS)

build/examples/loop_%: examples/loop_%.c examples/example.h include/webhook/adapters/%.h \
                       include/webhook/webhook.h $(STLIB) | need-loop-deps
	@mkdir -p $(@D)
	$(CC) $(WFLAGS) $(CFLAGS) -Iinclude $(DEPCFLAGS) -o $@ $< $(STLIB) $(LOOP_LIBS_$*) $(DEPLIBS)

# the metrics example serves /metrics with libmicrohttpd
build/examples/metrics_http: examples/metrics_http.c examples/example.h include/webhook/webhook.h $(STLIB) | need-test-libs
	@mkdir -p $(@D)
	$(CC) $(WFLAGS) $(CFLAGS) -Iinclude $(DEPCFLAGS) $(shell pkg-config --cflags libmicrohttpd 2>/dev/null) \
	    -o $@ $< $(STLIB) $(shell pkg-config --libs libmicrohttpd 2>/dev/null) $(DEPLIBS)

examples: $(EXAMPLES)

# Every drive-mode example against examples/receiver, which checks each signature; the metrics
# example scraped over HTTP and checked by promtool.
test-examples: $(EXAMPLES) need-metrics-deps
	bash examples/run_examples.sh
	bash examples/run_metrics_example.sh

# README's usage snippet, compiled (ISO C11, -pedantic) and linked as it stands.
test-readme: $(STLIB)
	bash tests/readme_snippet.sh README.md "$(CC) $(WFLAGS) -pedantic $(CFLAGS) -Iinclude $(DEPCFLAGS)" \
	    "$(STLIB) $(DEPLIBS)"

# The CMake package: a tiny CMake project (tests/cmake/) configured, built and run against a
# staged `make install`.
test-cmake: all
	@command -v cmake >/dev/null || $(MAKE) --no-print-directory deps
	rm -rf build/test-cmake
	$(MAKE) --no-print-directory install DESTDIR=$(CURDIR)/build/test-cmake/stage >/dev/null
	bash tests/cmake/run.sh $(CURDIR)/build/test-cmake/stage "$(PREFIX)" "$(LIBDIR)" "$(VERSION)" "$(SONAME)"

# The CMake package finds the headers and the library relative to itself, so that a staged or
# moved install works: cmake_config(template, output).
cmake_config = sed -e 's|@INCDIR_REL@|$(shell realpath -m --relative-to=$(CMAKEDIR) $(INCDIR))|' \
                   -e 's|@LIBDIR_REL@|$(shell realpath -m --relative-to=$(CMAKEDIR) $(LIBDIR))|' \
                   -e 's|@VERSION@|$(VERSION)|g' -e 's|@MAJOR@|$(MAJOR)|g' -e 's|@SONAME@|$(SONAME)|g' \
                   -e 's|@PQ_INCDIR@|$(shell pkg-config --variable=includedir libpq 2>/dev/null)|g' \
                   -e 's|@MINOR@|$(word 2,$(subst ., ,$(VERSION)))|g' \
                   -e 's|@SIZEOF_VOID_P@|$(shell echo __SIZEOF_POINTER__ | $(CC) -E -P -x c - | tail -n 1)|g' \
                   $(1) > $(2)

check: examples test-examples test-readme test-cmake

need-metrics-deps:
	@{ command -v promtool && command -v curl; } >/dev/null || $(MAKE) --no-print-directory deps

build/tests/test_metrics build/asan-tests/test_metrics: | need-metrics-deps

.PHONY: need-loop-deps need-metrics-deps examples test-examples test-readme test-cmake

# ---- Debian packages ----------------------------------------------------------------------
# `make deb`: libwebhook1, libwebhook-dev and webhookctl, built by dpkg-buildpackage from the
# debian/ directory in a copy of the source tree (dpkg-buildpackage writes its packages next
# to the tree it builds, and its work files inside it), into build/deb/; then lintian, which
# must report no error. `make test-deb` (as root) installs them, builds examples against the
# installed packages with pkg-config and with CMake, runs them, and removes the packages.
DEB_PACKAGES += debhelper dpkg-dev fakeroot lintian
DEB_OUT := build/deb
DEB_SRC := $(DEB_OUT)/libwebhook-$(VERSION)
DEB_BUILD_OPTIONS ?= noautodbgsym parallel=$(shell nproc)

need-deb-deps:
	@{ command -v dpkg-buildpackage && command -v dh && command -v lintian; } >/dev/null || \
	  $(MAKE) --no-print-directory deps

deb: need-deb-deps
	rm -rf $(DEB_OUT)
	mkdir -p $(DEB_SRC)
	tar -cf - --exclude=./build --exclude=./.git --exclude=./tests/interop/node_modules \
	    --exclude='./lib/*.a' --exclude='./lib/*.so*' --exclude=./pkgconfig/libwebhook.pc . | \
	  tar -xf - -C $(DEB_SRC)
	cd $(DEB_SRC) && DEB_BUILD_OPTIONS="$(DEB_BUILD_OPTIONS)" dpkg-buildpackage -us -uc -b
	rm -rf $(DEB_SRC)
	lintian --fail-on error $(DEB_OUT)/*.changes
	@ls $(DEB_OUT)/*.deb

test-deb:
	bash tests/deb/check_packages.sh $(DEB_OUT)

.PHONY: need-deb-deps deb test-deb

clean:
	rm -rf build lib/*.a lib/*.so* pkgconfig/libwebhook.pc
