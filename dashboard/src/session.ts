// Signing in (docs/api.md, "Sign-in"): the refresh token lives in an HttpOnly cookie the page
// never sees; the short-lived access token lives in this module's memory only, renewed about
// a minute before it runs out and handed to whoever listens (the live socket).

export interface AuthConfig {
  provider_name: string | null;
  sign_in: boolean;
  dev_token_sign_in: boolean;
}

export interface CompanyRef {
  id: string;
  name: string;
  slug: string;
  role: string;
}

export interface CompanyChoice extends CompanyRef {
  status: string;
}

export interface Person {
  subject: string;
  email: string | null;
  display_name: string | null;
}

export interface SessionInfo {
  access_token: string;
  token_type: string;
  expires_in: number;
  company: CompanyRef | null;
  companies: CompanyChoice[];
  person: Person;
  platform_operator: boolean;
}

// from an invitation link, `#invite=<company>.<token>`
export interface PendingInvite {
  company: string;
  token: string;
}

export interface InvitationPreview {
  company_name: string;
  role: string;
  email: string;
  expires_at: string;
  status: string;
}

export class AuthError extends Error {
  constructor(public status: number, public code: string, detail: unknown) {
    super(typeof detail === "string" && detail ? detail : code);
  }
}

const RENEW_BEFORE_MS = 60_000;
const NO_SIGN_IN: AuthConfig = { provider_name: null, sign_in: false, dev_token_sign_in: false };

// the header is the CSRF guard of the cookie-carrying endpoints: a cross-site form cannot set it
async function auth<T>(method: "GET" | "POST", path: string, body?: unknown): Promise<T> {
  const response = await fetch(path, {
    method,
    credentials: "same-origin",
    cache: "no-store",
    headers: {
      "X-Requested-With": "controlroom",
      ...(body !== undefined ? { "Content-Type": "application/json" } : {}),
    },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  let data: { error?: string; detail?: unknown } | null = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) throw new AuthError(response.status, data?.error ?? "error", data?.detail);
  return data as T;
}

export async function authConfig(): Promise<AuthConfig> {
  try {
    return { ...NO_SIGN_IN, ...(await auth<Partial<AuthConfig>>("GET", "/auth/config")) };
  } catch {
    return NO_SIGN_IN;
  }
}

// Refresh tokens rotate on every use and a token presented twice revokes the whole family, so
// two tabs must never refresh at once: a Web Lock serializes them across the browser's tabs,
// and one promise at a time within this one.
let inFlight: { company: string | null; answer: Promise<SessionInfo> } | null = null;

export function refresh(companyId: string | null): Promise<SessionInfo> {
  if (inFlight && inFlight.company === companyId) return inFlight.answer; // the same question: one call
  const run = () => auth<SessionInfo>("POST", "/auth/refresh", { company_id: companyId });
  const locked = (): Promise<SessionInfo> => navigator.locks
    ? (navigator.locks.request("controlroom-refresh", run) as unknown as Promise<SessionInfo>)
    : run();
  // another company's refresh still running: this one goes after it (each rotates the cookie)
  const before = inFlight ? inFlight.answer.then(() => undefined, () => undefined) : Promise.resolve();
  const answer = before.then(locked);
  const mine = { company: companyId, answer };
  inFlight = mine;
  void answer.finally(() => { if (inFlight === mine) inFlight = null; }).catch(() => undefined);
  return answer;
}

export async function logout(): Promise<void> {
  try {
    await auth<null>("POST", "/auth/logout");
  } catch {
    // signed out either way: the access token is dropped from memory
  }
}

export function previewInvitation(companyId: string, token: string): Promise<InvitationPreview> {
  const query = new URLSearchParams({ company_id: companyId, token });
  return auth<InvitationPreview>("GET", `/auth/invitations/preview?${query}`);
}

export function acceptInvitation(companyId: string, token: string): Promise<{ company: CompanyRef }> {
  return auth<{ company: CompanyRef }>("POST", "/auth/invitations/accept", { company_id: companyId, token });
}

export function loginUrl(next: string): string {
  return `/auth/login?${new URLSearchParams({ next })}`;
}

// Why a refusal ended a session, in words for the person in front of the screen.
export function reasonOf(err: unknown, company?: string): string {
  if (err instanceof AuthError) {
    if (err.code === "suspended") return `${company ?? "This company"} is suspended; ask your platform operator.`;
    if (err.status === 401) return "Your session has ended; sign in again.";
    if (err.status === 403 && err.code === "forbidden") {
      return company ? `You are no longer a member of ${company}.` : "You no longer have access to this company.";
    }
    if (err.status === 403) return err.message;
    if (err.status === 429) return "Too many attempts; wait a moment and try again.";
    return err.message;
  }
  return "The service cannot be reached; try again in a moment.";
}

type Listener = (token: string) => void;

/** The access token of one signed-in company. Renews itself until closed. */
export class Session {
  private timer = 0;
  private listeners = new Set<Listener>();
  private closed = false;
  private renewAt = 0;

  constructor(
    public info: SessionInfo,
    private onEnd: (reason: string) => void,
    public readonly renewable = true,
  ) {
    this.schedule();
    document.addEventListener("visibilitychange", this.onVisible);
  }

  // a hidden tab's timers are throttled (to once a minute and less): catch up when it shows
  private onVisible = () => {
    if (document.visibilityState === "visible" && this.renewable && Date.now() >= this.renewAt) void this.renew();
  };

  token(): string {
    return this.info.access_token;
  }

  get company(): CompanyRef | null {
    return this.info.company;
  }

  onRenew(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** A fresh access token for the same company; on refusal the session ends with the reason. */
  async renew(): Promise<boolean> {
    if (!this.renewable || this.closed) return false;
    const company = this.info.company;
    try {
      const info = await refresh(company?.id ?? null);
      if (this.closed) return false;
      if (company && info.company?.id !== company.id) {
        this.end(`You are no longer a member of ${company.name}.`);
        return false;
      }
      this.info = info;
      this.schedule();
      for (const listener of this.listeners) listener(info.access_token);
      return true;
    } catch (err) {
      if (err instanceof AuthError && err.status < 500 && err.status !== 429) {
        this.end(reasonOf(err, company?.name));
      } else {
        this.timer = window.setTimeout(() => void this.renew(), 15_000); // a blip: try again
      }
      return false;
    }
  }

  close(): void {
    this.closed = true;
    document.removeEventListener("visibilitychange", this.onVisible);
    window.clearTimeout(this.timer);
    this.listeners.clear();
  }

  private end(reason: string): void {
    this.close();
    this.onEnd(reason);
  }

  private schedule(): void {
    window.clearTimeout(this.timer);
    if (!this.renewable) return;
    const delay = Math.max(5_000, this.info.expires_in * 1000 - RENEW_BEFORE_MS);
    this.renewAt = Date.now() + delay;
    this.timer = window.setTimeout(() => void this.renew(), delay);
  }
}

// A development token (DEV_TOKEN_SIGN_IN): pasted or from a `#token=` link; nothing renews it.
export function devSession(token: string, onEnd: (reason: string) => void): Session {
  let claims: { sub?: string; company_id?: string; role?: string; exp?: number } = {};
  try {
    claims = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
  } catch {
    // an unreadable token is refused by the server on first use
  }
  const expiresIn = claims.exp ? Math.max(0, claims.exp - Date.now() / 1000) : 900;
  const info: SessionInfo = {
    access_token: token,
    token_type: "Bearer",
    expires_in: expiresIn,
    company: claims.company_id ? { id: claims.company_id, name: "", slug: "", role: claims.role ?? "viewer" } : null,
    companies: [],
    person: { subject: claims.sub ?? "", email: null, display_name: null },
    platform_operator: false,
  };
  return new Session(info, onEnd, false);
}
