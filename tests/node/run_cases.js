// Calls a denseface server with the official Tencent Cloud Node.js SDK (tencentcloud-sdk-nodejs), one
// call per case, and prints one JSON array of outcomes. Driven by tests/test_node_sdk.py.
//
// stdin: {"image_files": {name: path}, "cases": [{"id", "version", "endpoint", "reqMethod",
//          "signMethod"?, "secretId", "secretKey", "action", "image", "params"?, "language"?}]}
// stdout: [{"id", "ok": true, "response": {...}} | {"id", "ok": false, "code", "message", "requestId"}]
"use strict";

const fs = require("fs");
const tencentcloud = require("tencentcloud-sdk-nodejs");

const CLIENTS = {
  "2018-03-01": tencentcloud.iai.v20180301.Client,
  "2020-03-03": tencentcloud.iai.v20200303.Client,
};

async function runCase(spec, images) {
  const Client = CLIENTS[spec.version];
  const client = new Client({
    credential: { secretId: spec.secretId, secretKey: spec.secretKey },
    region: "ap-guangzhou",
    profile: {
      signMethod: spec.signMethod || "TC3-HMAC-SHA256",
      language: spec.language || "zh-CN",
      httpProfile: { protocol: "http://", endpoint: spec.endpoint, reqMethod: spec.reqMethod, reqTimeout: 30 },
    },
  });
  const params = { ...(spec.params || {}) };
  if (spec.image) params.Image = images[spec.image];
  try {
    const response = await client[spec.action](params);
    return { id: spec.id, ok: true, response };
  } catch (error) {
    return {
      id: spec.id,
      ok: false,
      code: error.code || null,
      message: error.message || String(error),
      requestId: error.requestId || null,
    };
  }
}

async function main() {
  const input = JSON.parse(fs.readFileSync(0, "utf8"));
  const images = {};
  for (const [name, path] of Object.entries(input.image_files || {})) {
    images[name] = fs.readFileSync(path).toString("base64");
  }
  const results = [];
  for (const spec of input.cases) {
    results.push(await runCase(spec, images));
  }
  process.stdout.write(JSON.stringify(results));
}

main().catch((error) => {
  process.stderr.write(String((error && error.stack) || error) + "\n");
  process.exit(1);
});
