// The main flow through the generated types, as a frontend would write it: register, log in,
// create tasks (one, then a batch), list them with a filter, and read a typed error.
// `tsc` checks every path, parameter and body against generated/schema.d.ts (made from
// server/docs/openapi.json by `npm run generate`); tests/e2e/test_typescript_client.py runs it.
//
//   node build/src/flow.js http://127.0.0.1:8080   -> prints a JSON summary, exits 1 on failure
import createClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "../generated/schema.js";

type Task = components["schemas"]["Task"];
type Status = components["schemas"]["Status"];

function fail(step: string, error: unknown): never {
  console.error(`${step} failed: ${JSON.stringify(error)}`);
  process.exit(1);
}

async function main(baseUrl: string): Promise<void> {
  const api = createClient<paths>({ baseUrl });
  const email = `ts-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.com`;
  const password = "correct horse battery";

  const registered = await api.POST("/api/v1/auth/register", {
    body: { email, password, name: "TypeScript" },
  });
  if (!registered.data) fail("register", registered.error);
  const userId: string = registered.data.id;

  const login = await api.POST("/api/v1/auth/login", { body: { email, password } });
  if (!login.data) fail("login", login.error);
  const token: string = login.data.access_token;
  const expiresIn: number = login.data.expires_in;

  const auth: Middleware = {
    onRequest({ request }) {
      request.headers.set("authorization", `Bearer ${token}`);
      return request;
    },
  };
  api.use(auth);
  const me = { path: { user_id: "me" } } as const;

  const created = await api.POST("/api/v1/users/{user_id}/tasks", {
    params: me,
    body: { title: "Buy milk", priority: "PRIORITY_HIGH", tags: ["home"] },
  });
  if (!created.data) fail("create", created.error);
  const task: Task = created.data;

  const batch = await api.POST("/api/v1/users/{user_id}/tasks:batchCreate", {
    params: me,
    body: { tasks: [{ title: "Call Bob" }, { title: "Pay rent", tags: ["home"] }] },
  });
  if (!batch.data) fail("batch create", batch.error);

  const listed = await api.GET("/api/v1/users/{user_id}/tasks", {
    params: { ...me, query: { tag: ["home"], order_by: "title" } },
  });
  if (!listed.data) fail("list", listed.error);
  const titles: string[] = listed.data.tasks.map((t: Task) => t.title);

  const missing = await api.GET("/api/v1/users/{user_id}/tasks/{task_id}", {
    params: { path: { user_id: "me", task_id: "00000000-0000-4000-8000-000000000000" } },
  });
  const error: Status | undefined = missing.error;
  const reasons = (error?.details ?? []).flatMap((d) =>
    d["@type"] === "type.googleapis.com/google.rpc.ErrorInfo" ? [d.reason ?? ""] : [],
  );

  console.log(
    JSON.stringify({
      user_id: userId,
      expires_in: expiresIn,
      created_id: task.id,
      created_status: created.response.status,
      batch_size: batch.data.tasks.length,
      titles,
      total_size: listed.data.total_size,
      rate_limit: listed.response.headers.get("ratelimit-limit"),
      missing_status: missing.response.status,
      missing_reasons: reasons,
    }),
  );
}

await main(process.argv[2] ?? "http://127.0.0.1:8080");
