// The program that `record.py` runs for a Node.js setup: the AI SDK's OpenTelemetry integration, the
// OpenTelemetry JS SDK and its OTLP/HTTP (protobuf) exporter, calling the provider stubs. The Node.js
// counterpart of `driver.py`, with the same command line and the same protocol: before each call style
// it flushes the provider and announces the style (`POST STUB/_tb/style`); it prints one
// `TB-STYLE {"style", "ok", "error"}` line per call style on stdout.
//
//     node driver.mjs --stub URL --sink URL --instrument NAME --calls GROUP
import { createAnthropic } from "@ai-sdk/anthropic";
import { createOpenAI } from "@ai-sdk/openai";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import * as ai from "ai";
import { z } from "zod";

const { generateText, stepCountIs, streamText, tool } = ai;

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, arg, i, all) => (i % 2 ? pairs : [...pairs, [arg.slice(2), all[i + 1]]]), []),
);
const QUESTION = "What is the weather in Paris?";
const TIMEOUT_MS = 10_000;

const provider = new NodeTracerProvider({
  resource: resourceFromAttributes({ "service.name": "tokenbook-conformance" }),
  spanProcessors: [
    new BatchSpanProcessor(new OTLPTraceExporter({ url: `${args.sink}/v1/traces`, timeoutMillis: TIMEOUT_MS }), {
      scheduledDelayMillis: 200,
    }),
  ],
});
provider.register();

// ai 7: an integration from @ai-sdk/otel, registered; ai 5 ("ai-sdk-builtin"): the tracing built into
// `ai`, on for each call by its telemetry option and sent to the global provider.
const builtin = args.instrument === "ai-sdk-builtin";
for (const name of args.instrument.split(",").filter(Boolean)) {
  if (name === "ai-sdk-builtin") continue;
  const otel = await import("@ai-sdk/otel");
  if (name === "ai-sdk-otel") ai.registerTelemetry(new otel.OpenTelemetry());
  else if (name === "ai-sdk-legacy") ai.registerTelemetry(new otel.LegacyOpenTelemetry());
  else throw new Error(`unknown instrumentation ${name}`);
}

const openai = createOpenAI({ baseURL: `${args.stub}/v1`, apiKey: "sk-test" });
const anthropic = createAnthropic({ baseURL: `${args.stub}/v1`, apiKey: "sk-ant-test" });
// Telemetry on, prompts and answers not recorded (a ledger needs none of it); ai 5 names the option
// experimental_telemetry.
const settings = { isEnabled: true, recordInputs: false, recordOutputs: false };
const telemetry = builtin ? undefined : settings;
const experimental_telemetry = builtin ? settings : undefined;
// A cached system prompt: the stub answers with cache reads and writes whatever the request says.
const cachedSystem = {
  role: "system",
  content: "You are a terse weather bot.",
  providerOptions: { anthropic: { cacheControl: { type: "ephemeral", ttl: "1h" } } },
};
const weather = tool({
  description: "The current weather in a city.",
  inputSchema: z.object({ city: z.string() }),
  execute: async ({ city }) => `Sunny, 21 °C in ${city}.`,
});
// The cached system prompt: ai 7 takes it as instructions, ai 5 as the first message.
const anthropicPrompt = builtin
  ? { messages: [cachedSystem, { role: "user", content: QUESTION }] }
  : { instructions: cachedSystem, prompt: QUESTION };

async function drain(result) {
  for await (const _ of result.textStream);
}

const CALLS = {
  "ai-sdk": {
    chat: () => generateText({ model: openai.chat("gpt-4o-mini"), prompt: QUESTION, telemetry, experimental_telemetry }),
    chat_stream: () =>
      drain(streamText({ model: openai.chat("gpt-4o-mini"), prompt: QUESTION, telemetry, experimental_telemetry })),
    responses: () =>
      generateText({ model: openai.responses("gpt-4o-mini"), prompt: QUESTION, telemetry, experimental_telemetry }),
    messages: () =>
      generateText({ model: anthropic("claude-sonnet-4-5"), ...anthropicPrompt, telemetry, experimental_telemetry }),
    messages_stream: () =>
      drain(streamText({ model: anthropic("claude-sonnet-4-5"), ...anthropicPrompt, telemetry, experimental_telemetry })),
    // model call, tool, model call: two calls under one generateText
    tool_loop: () =>
      generateText({
        model: openai.chat("gpt-4o-mini"),
        prompt: QUESTION,
        tools: { get_weather: weather },
        stopWhen: stepCountIs(3),
        telemetry,
        experimental_telemetry,
      }),
  },
};

async function announce(style) {
  const answer = await fetch(`${args.stub}/_tb/style`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ style }),
    signal: AbortSignal.timeout(TIMEOUT_MS),
  });
  await answer.text();
}

for (const group of args.calls.split(",").filter(Boolean)) {
  for (const [style, call] of Object.entries(CALLS[group])) {
    await provider.forceFlush();
    await announce(style);
    console.error(`--- call style ${style}`);
    let error = null;
    try {
      await call();
    } catch (e) {
      error = String(e && e.stack ? e.stack : e);
      console.error(error);
    }
    await provider.forceFlush();
    console.log("TB-STYLE", JSON.stringify({ style, ok: error === null, error }));
  }
}
await announce("");
await provider.shutdown();
