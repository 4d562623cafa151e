// The REST API (docs/api.md): same origin, the same access token as the socket.
import type { Session } from "./session";

export class ApiError extends Error {
  constructor(public status: number, public code: string, public detail: unknown) {
    super(typeof detail === "string" ? detail : code);
  }
}

// An error as a person reads it: the API's own words ("detail"), a validation error as
// "field: message" lines, never a bare status code.
export function errorText(err: unknown): string {
  if (!(err instanceof ApiError)) return "The service cannot be reached; try again in a moment.";
  const d = err.detail;
  if (typeof d === "string" && d) return d;
  if (Array.isArray(d) && d.length) {
    return d.map((e: { loc?: unknown[]; msg?: string }) => {
      const where = (e.loc ?? []).filter((l) => l !== "body" && l !== "query").join(".");
      return `${where ? `${where}: ` : ""}${(e.msg ?? "invalid").replace(/^Value error, /, "")}`;
    }).join("; ");
  }
  if (err.status === 403) return "Your role does not allow this.";
  if (err.status === 404) return "Not found (it may have been removed).";
  return err.code.replaceAll("_", " ");
}

// a session (renewed in memory) or, in development, a bare token
export type Credentials = Session | string;

async function call(token: string, method: string, path: string, body?: unknown): Promise<Response> {
  return fetch(`/api${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body !== undefined ? { "Content-Type": "application/json" } : {}) },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
}

export async function api<T>(auth: Credentials, method: string, path: string, body?: unknown): Promise<T> {
  let response = await call(typeof auth === "string" ? auth : auth.token(), method, path, body);
  // an access token that ran out while the machine slept: renew once and try again
  if (response.status === 401 && typeof auth !== "string" && (await auth.renew())) {
    response = await call(auth.token(), method, path, body);
  }
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(response.status, data?.error ?? "error", data?.detail);
  return data as T;
}
