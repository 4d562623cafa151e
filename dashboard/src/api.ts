// The REST API (docs/api.md): same origin, the same access token as the socket.
import type { Session } from "./session";

export class ApiError extends Error {
  constructor(public status: number, public code: string, detail: unknown) {
    super(typeof detail === "string" ? detail : code);
  }
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
