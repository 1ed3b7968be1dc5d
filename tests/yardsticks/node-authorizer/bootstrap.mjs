#!/usr/bin/env node
// The Lambda Runtime API loop of a custom runtime, as small as one can be: it loads the
// handler, then asks for an event, answers it, and asks again. node:http, not fetch, whose
// first use alone costs tens of milliseconds: the yardstick gives Node its best start.
import http from "node:http";

const [host, port] = process.env.AWS_LAMBDA_RUNTIME_API.split(":");
const base = "/2018-06-01/runtime/invocation";
const agent = new http.Agent({ keepAlive: true });

function call(method, path, body) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host, port, method, path, agent }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

const { handler } = await import("./index.mjs");
for (;;) {
  const next = await call("GET", `${base}/next`);
  const id = next.headers["lambda-runtime-aws-request-id"];
  let answer;
  try {
    answer = ["response", JSON.stringify(await handler(JSON.parse(next.body)))];
  } catch (e) {
    answer = ["error", JSON.stringify({ errorType: e.name, errorMessage: e.message })];
  }
  await call("POST", `${base}/${id}/${answer[0]}`, answer[1]);
}
