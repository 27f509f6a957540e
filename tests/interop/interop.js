#!/usr/bin/env node
// Signs or verifies one message with the standardwebhooks npm package, so that
// tests/test_interop.c can check libwebhook against an independent implementation.
//
//   node interop.js sign   SECRET MSG_ID TIMESTAMP BODY_FILE
//       prints the package's signature ("v1,...") on stdout
//   node interop.js verify SECRET MSG_ID TIMESTAMP SIGNATURE_HEADER BODY_FILE
//       exit 0 when Webhook.verify accepts (it checks TIMESTAMP against the current
//       time), 1 when it rejects the message, 2 on a usage or setup error
//
// The body is read from a file as raw bytes, so quotes and non-ASCII text need no escaping.
"use strict";

const fs = require("fs");

// An uncaught error would exit with 1, which means "rejected" here: make it 2.
process.on("uncaughtException", (e) => {
    process.stderr.write(`interop.js: ${e && e.stack ? e.stack : e}\n`);
    process.exit(2);
});

function usage(msg) {
    process.stderr.write(`interop.js: ${msg}\n` +
        "usage: interop.js sign SECRET MSG_ID TIMESTAMP BODY_FILE\n" +
        "       interop.js verify SECRET MSG_ID TIMESTAMP SIGNATURE_HEADER BODY_FILE\n");
    process.exit(2);
}

let Webhook, WebhookVerificationError;
try {
    ({ Webhook, WebhookVerificationError } = require("standardwebhooks"));
} catch (e) {
    process.stderr.write("interop.js: cannot load the standardwebhooks package " +
        `(run \`npm ci\` in tests/interop, or \`make deps\`): ${e.message}\n`);
    process.exit(2);
}

const args = process.argv.slice(2);
const mode = args[0];

if (mode === "sign") {
    if (args.length !== 5) usage("sign takes 4 arguments");
    const [, secret, msgId, ts, bodyFile] = args;
    if (!/^-?[0-9]+$/.test(ts)) usage(`bad timestamp ${ts}`);
    const body = fs.readFileSync(bodyFile);
    const wh = new Webhook(secret);
    process.stdout.write(wh.sign(msgId, new Date(Number(ts) * 1000), body) + "\n");
    process.exit(0);
} else if (mode === "verify") {
    if (args.length !== 6) usage("verify takes 5 arguments");
    const [, secret, msgId, ts, signature, bodyFile] = args;
    const body = fs.readFileSync(bodyFile);
    const wh = new Webhook(secret);
    const headers = {
        "webhook-id": msgId,
        "webhook-timestamp": ts,
        "webhook-signature": signature,
    };
    try {
        wh.verify(body, headers, { jsonParse: false });
    } catch (e) {
        if (e instanceof WebhookVerificationError) {
            process.stderr.write(`rejected: ${e.name}: ${e.message}\n`);
            process.exit(1);
        }
        throw e;
    }
    process.stdout.write("ok\n");
    process.exit(0);
} else {
    usage(`unknown mode ${mode === undefined ? "(none)" : mode}`);
}
