// Drives the official Node SDK (npm `dify-client`, 2.3.2 is the newest on npm) through the gateway
// with a tenant JWT. Usage: node node_sdk.mjs http://127.0.0.1:8080/v1 <tenant JWT>
// Checks a blocking and a streaming completion, a feedback, the parameters and a file upload.
import { CompletionClient } from "dify-client";

const [base, token] = process.argv.slice(2);
const client = new CompletionClient(token, base);
const user = "sdk-node";
const check = (cond, what) => { if (!cond) { throw new Error(`failed: ${what}`); } };

const blocking = (await client.createCompletionMessage({ topic: "green tea" }, user, false)).data;
check(blocking.event === "message" && blocking.answer, "blocking completion");
console.log("blocking completion:", blocking.answer.slice(0, 40), "...");

const stream = (await client.createCompletionMessage({ topic: "oolong" }, user, true)).data;
let text = "";
for await (const chunk of stream) { text += chunk.toString("utf8"); }
const events = text.split("\n\n").filter((f) => f.startsWith("data: ")).map((f) => JSON.parse(f.slice(6)));
check(events.at(-1).event === "message_end", "streaming completion ends with message_end");
console.log("streaming completion:", events.length, "events, usage", events.at(-1).metadata.usage.total_tokens, "tokens");

const fb = (await client.messageFeedback(blocking.message_id, "like", user)).data;
check(fb.result === "success", "feedback");
console.log("feedback:", fb);

const params = (await client.getApplicationParameters(user)).data;
check(params.user_input_form, "parameters");
console.log("parameters: ok");

const form = new FormData();
form.append("user", user);
form.append("file", new Blob([new Uint8Array(1024)], { type: "image/png" }), "leaf.png");
const up = await client.fileUpload(form);
check(up.status === 201 && up.data.name === "leaf.png", "file upload");
console.log("file upload:", up.status, up.data.id);
console.log("node SDK: all calls succeeded");
