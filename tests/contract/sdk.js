// Runs an official partner SDK, unchanged, against our API: only its base URL points at us.
//
// Reads a program on stdin: {"sdk": "doordash" | "uber", "base_url", "credentials", "calls": [{"method", "args"}]}
// and prints one JSON document on stdout: {"calls": [outcome...], "access_token"?}. An outcome is
// {"ok": true, "status", "data"} or {"ok": false, "error": {"class", "code", "reason", "status", "message",
// "field_errors", "metadata"}}, where "class" is the SDK's own error class.
"use strict";

const UBER_HOSTS = /^https:\/\/(login|api)\.uber\.com/;

async function readProgram() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}

function doordashClient(program) {
  const { DoorDashClient } = require("@doordash/sdk");
  const client = new DoorDashClient(program.credentials);
  client._apiClient.basePath = program.base_url; // the one line that points the Drive SDK at us
  return {
    client,
    async call(method, args) {
      const answer = await client[method](...args);
      return { status: answer.status, data: answer.data };
    },
    failure(error) {
      return { class: error.constructor.name, code: error.errorCode, message: error.message,
               field_errors: error.fieldErrors ?? null };
    },
  };
}

async function uberClient(program) {
  // The SDK calls Uber's fixed hosts through the global fetch: its base URL points at us by rewriting them.
  const fetchUber = globalThis.fetch;
  globalThis.fetch = (url, init) => fetchUber(String(url).replace(UBER_HOSTS, program.base_url), init);
  const { getAccessToken, createDeliveriesClient } = require("uber-direct");
  let token = program.credentials.access_token;
  if (!token) {
    process.env.UBER_DIRECT_CLIENT_ID = program.credentials.client_id;
    process.env.UBER_DIRECT_CLIENT_SECRET = program.credentials.client_secret;
    token = await getAccessToken();
  }
  const client = createDeliveriesClient(token, program.credentials.customer_id);
  return {
    client,
    token,
    async call(method, args) {
      return { status: 200, data: await client[method](...args) };
    },
    failure(error) {
      return { class: error.constructor.name, code: error.code ?? null, status: error.status ?? null,
               message: typeof error.message === "string" ? error.message : String(error.message),
               metadata: error.metadata ?? null };
    },
  };
}

async function main() {
  const program = await readProgram();
  const sdk = program.sdk === "doordash" ? doordashClient(program) : await uberClient(program);
  const calls = [];
  for (const { method, args } of program.calls) {
    try {
      calls.push({ ok: true, ...(await sdk.call(method, args || [])) });
    } catch (error) {
      calls.push({ ok: false, error: sdk.failure(error) });
    }
  }
  process.stdout.write(JSON.stringify({ calls, access_token: sdk.token ?? null }));
}

main().catch((error) => {
  process.stderr.write(`${error && error.stack ? error.stack : error}\n`);
  process.exit(1);
});
