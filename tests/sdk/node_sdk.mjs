// Drives the official Node SDK (npm `dify-client`) through the gateway with a tenant JWT.
// Usage: node node_sdk.mjs http://127.0.0.1:8080/v1 <tenant JWT>
// Checks a blocking and a streaming completion, a feedback, the parameters and a file upload.
import { CompletionClient } from "dify-client";

const [base, token] = process.argv.slice(2);
const client = new CompletionClient(token, base);
const user = "sdk-node";
const check = (cond, what) => { if (!cond) { throw new Error(`failed: ${what}`); } };

const blocking = await client.createCompletionMessage({ topic: "green tea" }, user, false);
const b = blocking.data ?? blocking;
check(b.event === "message" && b.answer, "blocking completion");
console.log("blocking completion:", b.answer.slice(0, 40), "...");

const stream = await client.createCompletionMessage({ topic: "oolong" }, user, true);
const events = [];
for await (const ev of stream) { events.push(ev); }
const last = events.filter((e) => e && (e.event ?? e.data?.event)).map((e) => e.data ?? e).pop();
check(last && last.event === "message_end", "streaming completion ends with message_end");
console.log("streaming completion:", events.length, "events");

const fb = await client.messageFeedback(b.message_id, "like", user);
check((fb.data ?? fb).result === "success", "feedback");
console.log("feedback:", fb.data ?? fb);

const params = await client.getApplicationParameters(user);
check((params.data ?? params).user_input_form, "parameters");
console.log("parameters: ok");

const form = new FormData();
form.append("file", new Blob([new Uint8Array(1024)], { type: "image/png" }), "leaf.png");
const up = await client.fileUpload(form, user);
check((up.data ?? up).name === "leaf.png", "file upload");
console.log("file upload:", (up.data ?? up).id);
console.log("node SDK: all calls succeeded");
