// The REST API (docs/api.md): same origin, the same token as the socket.
export class ApiError extends Error {
  constructor(public status: number, public code: string, detail: unknown) {
    super(typeof detail === "string" ? detail : code);
  }
}

export async function api<T>(token: string, method: string, path: string, body?: unknown): Promise<T> {
  const response = await fetch(`/api${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body !== undefined ? { "Content-Type": "application/json" } : {}) },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(response.status, data?.error ?? "error", data?.detail);
  return data as T;
}
