// The program that `record.py` runs for a Node.js setup: an instrumentation (the AI SDK's OpenTelemetry
// integration, OpenTelemetry JS's, Elastic's, OpenInference's or OpenLLMetry's instrumentations of the
// openai, @anthropic-ai/sdk, @aws-sdk/client-bedrock-runtime and LangChain.js packages, Langfuse's OpenAI
// wrapper, OpenInference's processor of the AI SDK's spans, Traceloop's SDK, or Mastra's own
// observability), the OpenTelemetry JS SDK and its OTLP/HTTP (protobuf) exporter, calling the provider
// stubs. The Node.js counterpart of `driver.py`, with the same command line and the same
// protocol: before each call style it flushes the provider and announces the style
// (`POST STUB/_tb/style`); it prints one `TB-STYLE {"style", "ok", "error"}` line per call style on stdout.
//
//     node driver.mjs --stub URL --sink URL --instrument NAME[,NAME] --calls GROUP[,GROUP]
//
// Only the packages a setup pins are installed beside this file, so everything but the OpenTelemetry
// exporter is imported where a setup needs it. The provider SDKs are imported after their
// instrumentation is set up, and handed to it (`manuallyInstrument`): that is how each of these
// instrumentations is set up for an ES module, which the `require` hook they install cannot see; those
// with no manual set-up (OpenTelemetry JS's, Elastic's) are registered, with the loader hook that sees
// ES modules (`CONTRIB`).
import { createRequire } from "node:module";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";

const require = createRequire(import.meta.url);

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, arg, i, all) => (i % 2 ? pairs : [...pairs, [arg.slice(2), all[i + 1]]]), []),
);
const QUESTION = "What is the weather in Paris?";
const MESSAGES = [{ role: "user", content: QUESTION }];
const TIMEOUT_MS = 10_000;
const names = args.instrument.split(",").filter(Boolean);
const exporter = () => new OTLPTraceExporter({ url: `${args.sink}/v1/traces`, timeoutMillis: TIMEOUT_MS });

// -- tracing ---------------------------------------------------------------------------------------------

// Traceloop's SDK makes its provider itself (`initialize`: an OpenTelemetry NodeSDK, made global), with
// the exporter it is given; every other setup gets a global NodeTracerProvider with a batch processor.
let flush;
let shutdown;
if (names.includes("traceloop-sdk")) {
  const traceloop = await import("@traceloop/node-server-sdk");
  // Its instrumentations of the ES modules it is given (`instrumentModules`), no Traceloop API (no key,
  // prompt sync off), content off (TRACELOOP_TRACE_CONTENT=false in the environment)
  traceloop.initialize({
    appName: "tokenbook-conformance",
    exporter: exporter(),
    disableBatch: false,
    traceloopSyncEnabled: false,
    silenceInitializationMessage: true,
    instrumentModules: { openAI: (await import("openai")).default, anthropic: await import("@anthropic-ai/sdk") },
  });
  flush = () => traceloop.forceFlush();
  shutdown = () => traceloop.forceFlush();
} else {
  // (Mastra sends its own spans with its own exporter, beside this provider: see mastraCalls)
  const { resourceFromAttributes } = await import("@opentelemetry/resources");
  const { BatchSpanProcessor } = await import("@opentelemetry/sdk-trace-base");
  const { NodeTracerProvider } = await import("@opentelemetry/sdk-trace-node");
  // OpenInference's processor for the AI SDK's spans (@arizeai/openinference-vercel) adds its attributes
  // to each span before the batch exports it (every span: no filter)
  const batch = { scheduledDelayMillis: 200 };
  const processor = names.includes("openinference-vercel")
    ? new (await import("@arizeai/openinference-vercel")).OpenInferenceBatchSpanProcessor({
        exporter: exporter(),
        config: batch,
      })
    : new BatchSpanProcessor(exporter(), batch);
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ "service.name": "tokenbook-conformance" }),
    spanProcessors: [processor],
  });
  provider.register();
  flush = () => provider.forceFlush();
  shutdown = () => provider.shutdown();
}

// OpenTelemetry JS's contrib instrumentations and their like, by instrumentation name: [package, class]
const CONTRIB = {
  "otel-openai": ["@opentelemetry/instrumentation-openai", "OpenAIInstrumentation"],
  "otel-aws-sdk": ["@opentelemetry/instrumentation-aws-sdk", "AwsInstrumentation"],
  // Elastic's (EDOT Node.js), the contrib OpenAI instrumentation's origin, set up the same way
  "elastic-openai": ["@elastic/opentelemetry-instrumentation-openai", "OpenAIInstrumentation"],
};

// ai 7: an integration from @ai-sdk/otel, registered; ai 5 ("ai-sdk-builtin"): the tracing built into
// `ai`, on for each call by its telemetry option and sent to the global provider.
const builtin = names.includes("ai-sdk-builtin");
for (const name of names) {
  if (name === "ai-sdk-otel" || name === "ai-sdk-legacy") {
    const ai = await import("ai");
    const otel = await import("@ai-sdk/otel");
    ai.registerTelemetry(name === "ai-sdk-otel" ? new otel.OpenTelemetry() : new otel.LegacyOpenTelemetry());
  } else if (name === "openinference-openai") {
    // OpenInference: content hidden by OPENINFERENCE_HIDE_INPUTS / _OUTPUTS in the environment
    const { OpenAIInstrumentation } = await import("@arizeai/openinference-instrumentation-openai");
    new OpenAIInstrumentation().manuallyInstrument(await import("openai"));
  } else if (name in CONTRIB) {
    // OpenTelemetry JS's contrib instrumentations have no manual set-up: registered, they patch the
    // modules loaded after them, an ES module through the loader hook of @opentelemetry/instrumentation
    // (import-in-the-middle), registered first; the SDKs are imported later (openaiCalls, bedrockCalls)
    const [pkg, exported] = CONTRIB[name];
    const { register } = await import("node:module");
    register("@opentelemetry/instrumentation/hook.mjs", import.meta.url);
    const { registerInstrumentations } = await import("@opentelemetry/instrumentation");
    registerInstrumentations({ instrumentations: [new (await import(pkg))[exported]()] });
  } else if (name === "openinference-anthropic") {
    const { AnthropicInstrumentation } = await import("@arizeai/openinference-instrumentation-anthropic");
    new AnthropicInstrumentation().manuallyInstrument((await import("@anthropic-ai/sdk")).default);
  } else if (name === "openllmetry-openai") {
    // OpenLLMetry's instrumentations alone read no TRACELOOP_TRACE_CONTENT: content off by their option
    const { OpenAIInstrumentation } = await import("@traceloop/instrumentation-openai");
    new OpenAIInstrumentation({ traceContent: false }).manuallyInstrument((await import("openai")).default);
  } else if (name === "openllmetry-cohere") {
    const { CohereInstrumentation } = await import("@traceloop/instrumentation-cohere");
    new CohereInstrumentation({ traceContent: false }).manuallyInstrument(await import("cohere-ai"));
  } else if (name === "openllmetry-anthropic") {
    const { AnthropicInstrumentation } = await import("@traceloop/instrumentation-anthropic");
    new AnthropicInstrumentation({ traceContent: false }).manuallyInstrument(await import("@anthropic-ai/sdk"));
  } else if (name === "openinference-langchain") {
    // LangChain's callback manager (ES module), handed to the instrumentation as its README says
    const { LangChainInstrumentation } = await import("@arizeai/openinference-instrumentation-langchain");
    new LangChainInstrumentation().manuallyInstrument(await import("@langchain/core/callbacks/manager"));
  } else if (name === "openllmetry-langchain") {
    // it patches the callback manager it can `require` itself when made; handed the ES module too
    const { LangChainInstrumentation } = await import("@traceloop/instrumentation-langchain");
    new LangChainInstrumentation({ traceContent: false }).manuallyInstrument({
      callbackManagerModule: await import("@langchain/core/callbacks/manager"),
    });
  } else if (name === "openllmetry-bedrock") {
    const { BedrockInstrumentation } = await import("@traceloop/instrumentation-bedrock");
    new BedrockInstrumentation({ traceContent: false }).manuallyInstrument(
      await import("@aws-sdk/client-bedrock-runtime"),
    );
  } else if (name === "openinference-bedrock") {
    const { BedrockInstrumentation } = await import("@arizeai/openinference-instrumentation-bedrock");
    new BedrockInstrumentation().manuallyInstrument(await import("@aws-sdk/client-bedrock-runtime"));
  } else if (name === "openllmetry-google-genai") {
    // it replaces the module's GoogleGenAI export, which an ES module namespace does not allow: handed
    // the package's CommonJS build, which the calls then use (googleGenAI below)
    const { GenAIInstrumentation } = await import("@traceloop/instrumentation-google-generativeai");
    new GenAIInstrumentation({ traceContent: false }).manuallyInstrument(require("@google/genai"));
  } else if (
    !["ai-sdk-builtin", "traceloop-sdk", "mastra", "langfuse-openai", "openinference-vercel", "none"].includes(name)
  ) {
    throw new Error(`unknown instrumentation ${name}`);
  }
}

// -- calls -----------------------------------------------------------------------------------------------

async function drain(stream) {
  for await (const _ of stream);
}

// The AI SDK: ai 7 takes its telemetry settings as `telemetry`, ai 5 as `experimental_telemetry`.
async function aiSdkCalls() {
  const { createAnthropic } = await import("@ai-sdk/anthropic");
  const { createOpenAI } = await import("@ai-sdk/openai");
  const { generateText, stepCountIs, streamText, tool } = await import("ai");
  const { z } = await import("zod");
  const openai = createOpenAI({ baseURL: `${args.stub}/v1`, apiKey: "sk-test" });
  const anthropic = createAnthropic({ baseURL: `${args.stub}/v1`, apiKey: "sk-ant-test" });
  // Telemetry on, prompts and answers not recorded (a ledger needs none of it)
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
  const tracing = { telemetry, experimental_telemetry };
  // who and which session, as ai 5's telemetry metadata (written as ai.telemetry.metadata.<key>; ai 7
  // has no metadata: it takes a runtime context instead)
  const attributed = { experimental_telemetry: { ...settings, metadata: { userId: "user-42", sessionId: "session-7" } } };
  return {
    chat: () => generateText({ model: openai.chat("gpt-4o-mini"), prompt: QUESTION, ...tracing }),
    chat_stream: () => drain(streamText({ model: openai.chat("gpt-4o-mini"), prompt: QUESTION, ...tracing }).textStream),
    responses: () => generateText({ model: openai.responses("gpt-4o-mini"), prompt: QUESTION, ...tracing }),
    messages: () => generateText({ model: anthropic("claude-sonnet-4-5"), ...anthropicPrompt, ...tracing }),
    messages_stream: () =>
      drain(streamText({ model: anthropic("claude-sonnet-4-5"), ...anthropicPrompt, ...tracing }).textStream),
    // model call, tool, model call: two calls under one generateText
    tool_loop: () =>
      generateText({
        model: openai.chat("gpt-4o-mini"),
        prompt: QUESTION,
        tools: { get_weather: weather },
        stopWhen: stepCountIs(3),
        ...tracing,
      }),
    ...(builtin
      ? { chat_attributed: () => generateText({ model: openai.chat("gpt-4o-mini"), prompt: QUESTION, ...attributed }) }
      : {}),
  };
}

const OPENAI_TOOL = {
  type: "function",
  function: {
    name: "get_weather",
    description: "The current weather in a city.",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
};
const ANTHROPIC_TOOL = {
  name: "get_weather",
  description: "The current weather in a city.",
  input_schema: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
};
// A cached system prompt: the stub answers with cache reads and writes whatever the request says.
const ANTHROPIC_SYSTEM = [
  { type: "text", text: "You are a terse weather bot.", cache_control: { type: "ephemeral", ttl: "1h" } },
];

// The openai package (the official SDK): the styles of driver.py's "openai" group.
async function openaiCalls() {
  // openai 4 (Elastic's instrumentation instruments no later one) cannot be loaded through the loader
  // hook (it picks its fetch shims once per process, and the hook loads it twice): its CommonJS build,
  // which the instrumentation's require hook patches
  const { default: OpenAI } = names.includes("elastic-openai") ? { default: require("openai") } : await import("openai");
  // Langfuse's OpenAI wrapper (@langfuse/openai): its spans on the global provider
  const wrap = names.includes("langfuse-openai") ? (await import("@langfuse/openai")).observeOpenAI : (c) => c;
  const client = () =>
    wrap(new OpenAI({ baseURL: `${args.stub}/v1`, apiKey: "sk-test", maxRetries: 0, timeout: TIMEOUT_MS }));
  return {
    chat: () => client().chat.completions.create({ model: "gpt-4o-mini", messages: MESSAGES }),
    chat_stream: async () =>
      drain(
        await client().chat.completions.create({
          model: "gpt-4o-mini",
          messages: MESSAGES,
          stream: true,
          stream_options: { include_usage: true },
        }),
      ),
    reasoning: () => client().chat.completions.create({ model: "o3-mini", messages: MESSAGES, reasoning_effort: "low" }),
    tool_call: () => client().chat.completions.create({ model: "gpt-4o-mini", messages: MESSAGES, tools: [OPENAI_TOOL] }),
    embeddings: () =>
      client().embeddings.create({ model: "text-embedding-3-small", input: ["weather in Paris", "in Rome"] }),
    responses: () => client().responses.create({ model: "gpt-4o-mini", input: QUESTION }),
  };
}

// The @anthropic-ai/sdk package (the official SDK): the styles of driver.py's "anthropic" group but the
// async one (every call here is asynchronous).
async function anthropicCalls() {
  const { default: Anthropic } = await import("@anthropic-ai/sdk");
  const client = () =>
    new Anthropic({ baseURL: args.stub, apiKey: "sk-ant-test", maxRetries: 0, timeout: TIMEOUT_MS });
  const request = { model: "claude-sonnet-4-5", max_tokens: 256, system: ANTHROPIC_SYSTEM, messages: MESSAGES };
  return {
    messages: () => client().messages.create(request),
    messages_stream: async () => drain(await client().messages.create({ ...request, stream: true })),
    // the SDK's stream helper: `messages.stream()` and its final message
    messages_stream_helper: async () => {
      const stream = client().messages.stream(request);
      for await (const _ of stream);
      await stream.finalMessage();
    },
    tool_use: () => client().messages.create({ ...request, tools: [ANTHROPIC_TOOL] }),
    thinking: () =>
      client().messages.create({ ...request, max_tokens: 2048, thinking: { type: "enabled", budget_tokens: 1024 } }),
  };
}

// Traceloop's SDK: an OpenAI and an Anthropic call, each in a task, in a workflow with association
// properties (what Traceloop copies onto every span started under it), as driver.py's traceloop_workflow
async function traceloopCalls() {
  const traceloop = await import("@traceloop/node-server-sdk");
  const openai = await openaiCalls();
  const anthropic = await anthropicCalls();
  return {
    workflow: () =>
      traceloop.withWorkflow(
        { name: "weather_report", associationProperties: { user_id: "user-42", session_id: "session-7" } },
        async () => {
          await traceloop.withTask({ name: "ask_openai" }, openai.chat);
          await traceloop.withTask({ name: "ask_anthropic" }, anthropic.messages);
        },
      ),
  };
}

// LangChain.js: @langchain/openai's ChatOpenAI and @langchain/anthropic's ChatAnthropic, unstreamed and
// streamed, and one tool-calling round each (model call, the tool's answer, model call).
async function langchainCalls() {
  const { ChatOpenAI } = await import("@langchain/openai");
  const { ChatAnthropic } = await import("@langchain/anthropic");
  const { HumanMessage, SystemMessage, ToolMessage } = await import("@langchain/core/messages");
  const openai = () =>
    new ChatOpenAI({
      model: "gpt-4o-mini",
      apiKey: "sk-test",
      configuration: { baseURL: `${args.stub}/v1` },
      maxRetries: 0,
      timeout: TIMEOUT_MS,
      streamUsage: true,
    });
  const anthropic = () =>
    new ChatAnthropic({
      model: "claude-sonnet-4-5",
      apiKey: "sk-ant-test",
      anthropicApiUrl: args.stub,
      maxRetries: 0,
      maxTokens: 256,
      clientOptions: { timeout: TIMEOUT_MS },
    });
  // A cached system prompt (one-hour), as Anthropic content blocks
  const cached = () => [new SystemMessage({ content: ANTHROPIC_SYSTEM }), new HumanMessage(QUESTION)];
  // model call, the tool's answer, model call (the stubs answer a tool call while no tool answer is sent)
  async function toolRound(model, messages) {
    const bound = model.bindTools([OPENAI_TOOL]);
    const first = await bound.invoke(messages);
    const call = first.tool_calls[0];
    await bound.invoke([...messages, first, new ToolMessage({ content: "Sunny, 21 °C.", tool_call_id: call.id })]);
  }
  return {
    chat: () => openai().invoke(QUESTION),
    chat_stream: async () => drain(await openai().stream(QUESTION)),
    tool_loop: () => toolRound(openai(), [new HumanMessage(QUESTION)]),
    messages: () => anthropic().invoke(cached()),
    messages_stream: async () => drain(await anthropic().stream(cached())),
    messages_tool_loop: () => toolRound(anthropic(), cached()),
  };
}

// @aws-sdk/client-bedrock-runtime: driver.py's "bedrock" (Converse) and "bedrock-invoke" (InvokeModel,
// each model family's own body) styles, the same model IDs and bodies.
const BEDROCK_MODEL = "anthropic.claude-sonnet-4-5-20250929-v1:0";
const BEDROCK_CLAUDE_US = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
const BEDROCK_SYSTEM = [{ text: "You are a terse weather bot." }, { cachePoint: { type: "default" } }];
const BEDROCK_MESSAGES = [{ role: "user", content: [{ text: QUESTION }] }];

// Its default transport is HTTP/2 (for bidirectional streams), which the stub does not speak: the client is
// given the SDK's HTTP/1.1 handler (@smithy/node-http-handler, a dependency of the client).
async function bedrockClient() {
  const { BedrockRuntimeClient } = await import("@aws-sdk/client-bedrock-runtime");
  const { NodeHttpHandler } = await import("@smithy/node-http-handler");
  return new BedrockRuntimeClient({
    region: "us-east-1",
    endpoint: process.env.BEDROCK_BASE_URL,
    credentials: { accessKeyId: "AKIDTEST", secretAccessKey: "secret-test" },
    maxAttempts: 1,
    requestHandler: new NodeHttpHandler({ requestTimeout: TIMEOUT_MS }),
  });
}

async function bedrockCalls() {
  const { ConverseCommand, ConverseStreamCommand } = await import("@aws-sdk/client-bedrock-runtime");
  const client = await bedrockClient();
  const request = { modelId: BEDROCK_MODEL, system: BEDROCK_SYSTEM, messages: BEDROCK_MESSAGES };
  return {
    converse: () => client.send(new ConverseCommand(request)),
    converse_stream: async () => drain((await client.send(new ConverseStreamCommand(request))).stream),
  };
}

async function bedrockInvokeCalls() {
  const { InvokeModelCommand, InvokeModelWithResponseStreamCommand } = await import(
    "@aws-sdk/client-bedrock-runtime"
  );
  const client = await bedrockClient();
  // the Messages API's body, a cached system prompt (five minutes, the default)
  const claude = JSON.stringify({
    anthropic_version: "bedrock-2023-05-31",
    max_tokens: 256,
    system: [{ type: "text", text: "You are a terse weather bot.", cache_control: { type: "ephemeral" } }],
    messages: MESSAGES,
  });
  const nova = JSON.stringify({
    schemaVersion: "messages-v1",
    system: BEDROCK_SYSTEM,
    messages: BEDROCK_MESSAGES,
    inferenceConfig: { maxTokens: 256 },
  });
  const prompt = `<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n${QUESTION}<|eot_id|>`;
  const llama = JSON.stringify({ prompt: `${prompt}<|start_header_id|>assistant<|end_header_id|>\n\n`, max_gen_len: 256 });
  const options = { contentType: "application/json", accept: "application/json" };
  const invoke = async (modelId, body) => {
    const answer = await client.send(new InvokeModelCommand({ modelId, body, ...options }));
    JSON.parse(new TextDecoder().decode(answer.body));
  };
  const invokeStream = async (modelId, body) => {
    const answer = await client.send(new InvokeModelWithResponseStreamCommand({ modelId, body, ...options }));
    for await (const event of answer.body) JSON.parse(new TextDecoder().decode(event.chunk.bytes));
  };
  return {
    invoke_claude: () => invoke(BEDROCK_CLAUDE_US, claude),
    invoke_claude_stream: () => invokeStream(BEDROCK_CLAUDE_US, claude),
    invoke_claude_global: () => invoke("global.anthropic.claude-sonnet-4-5-20250929-v1:0", claude),
    invoke_claude_arn: () =>
      invoke(`arn:aws:bedrock:us-east-1:111122223333:inference-profile/${BEDROCK_CLAUDE_US}`, claude),
    invoke_nova: () => invoke("amazon.nova-lite-v1:0", nova),
    invoke_nova_stream: () => invokeStream("us.amazon.nova-lite-v1:0", nova),
    invoke_llama: () => invoke("us.meta.llama3-3-70b-instruct-v1:0", llama),
    invoke_llama_stream: () => invokeStream("us.meta.llama3-3-70b-instruct-v1:0", llama),
  };
}

// @google/genai (the Google Gen AI SDK), its CommonJS build (see openllmetry-google-genai): driver.py's
// "gemini" (the Gemini API, an API key) and "vertex" (Vertex AI mode: a project, a region and a fixed
// OAuth access token, nothing to refresh) styles.
function googleGenAI(vertex) {
  const { GoogleGenAI } = require("@google/genai");
  const httpOptions = { baseUrl: vertex ? process.env.VERTEX_BASE_URL : process.env.GEMINI_BASE_URL, timeout: TIMEOUT_MS };
  if (!vertex) return new GoogleGenAI({ apiKey: "gm-test", httpOptions });
  const { OAuth2Client } = require("google-auth-library");
  const authClient = new OAuth2Client();
  authClient.setCredentials({ access_token: "ya29.tb-test", expiry_date: Date.now() + 3_600_000 });
  return new GoogleGenAI({
    vertexai: true,
    project: "tb-project",
    location: "us-central1",
    googleAuthOptions: { authClient },
    httpOptions,
  });
}

function googleGenAICalls(vertex) {
  const prefix = vertex ? "vertex_" : "";
  const request = { model: "gemini-2.5-flash", contents: QUESTION };
  return {
    [`${prefix}generate`]: () => googleGenAI(vertex).models.generateContent(request),
    [`${prefix}generate_stream`]: async () => drain(await googleGenAI(vertex).models.generateContentStream(request)),
  };
}

// Mastra: an agent on an OpenAI model (the AI SDK's provider), in a Mastra instance whose observability
// exports with Mastra's own OpenTelemetry exporter (@mastra/otel-exporter, OTLP/HTTP protobuf) to the
// sink; the driver's global provider stays on beside it, so that any OpenTelemetry spans of the AI SDK
// would be recorded too.
async function mastraCalls() {
  const { Mastra } = await import("@mastra/core/mastra");
  const { Agent } = await import("@mastra/core/agent");
  const { Observability } = await import("@mastra/observability");
  const { OtelExporter } = await import("@mastra/otel-exporter");
  const { createOpenAI } = await import("@ai-sdk/openai");
  const openai = createOpenAI({ baseURL: `${args.stub}/v1`, apiKey: "sk-test" });
  const observability = new Observability({
    configs: {
      otel: {
        serviceName: "tokenbook-conformance",
        exporters: [
          new OtelExporter({
            provider: { custom: { endpoint: `${args.sink}/v1/traces`, protocol: "http/protobuf" } },
            signals: { logs: false },
          }),
        ],
      },
    },
  });
  const weather = new Agent({
    id: "weather-agent",
    name: "weather-agent",
    instructions: "You are a terse weather bot.",
    model: openai.chat("gpt-4o-mini"),
  });
  const mastra = new Mastra({ agents: { weather }, observability, logger: false });
  const agent = mastra.getAgent("weather");
  const flushMastra = flush;
  flush = async () => {
    await observability.flush();
    await flushMastra();
  };
  const previous = shutdown;
  shutdown = async () => {
    await observability.shutdown();
    await previous();
  };
  // content off where Mastra has a setting: each run's inputs and outputs hidden from its spans
  const options = { tracingOptions: { hideInput: true, hideOutput: true } };
  return {
    generate: () => agent.generate(QUESTION, options),
    stream: async () => drain((await agent.stream(QUESTION, options)).textStream),
  };
}

// The cohere-ai package's `CohereClient` (the API's first version, /v1/chat): a chat, unstreamed and streamed.
async function cohereCalls() {
  const { CohereClient } = await import("cohere-ai");
  const client = () => new CohereClient({ token: "co-test", environment: args.stub });
  const request = { model: "command-r-08-2024", message: QUESTION, preamble: "You are a terse weather bot." };
  return {
    chat: () => client().chat(request),
    chat_stream: async () => drain(await client().chatStream(request)),
  };
}

const GROUPS = {
  "ai-sdk": aiSdkCalls,
  openai: openaiCalls,
  anthropic: anthropicCalls,
  traceloop: traceloopCalls,
  langchain: langchainCalls,
  bedrock: bedrockCalls,
  cohere: cohereCalls,
  "bedrock-invoke": bedrockInvokeCalls,
  mastra: mastraCalls,
  gemini: async () => googleGenAICalls(false),
  vertex: async () => googleGenAICalls(true),
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
  for (const [style, call] of Object.entries(await GROUPS[group]())) {
    await flush();
    await announce(style);
    console.error(`--- call style ${style}`);
    let error = null;
    try {
      await call();
    } catch (e) {
      error = String(e && e.stack ? e.stack : e);
      console.error(error);
    }
    // a stream's span may end a moment after the application's last read (a library reading a tee of it)
    await new Promise((resolve) => setTimeout(resolve, 100));
    await flush();
    console.log("TB-STYLE", JSON.stringify({ style, ok: error === null, error }));
  }
}
await announce("");
await shutdown();
