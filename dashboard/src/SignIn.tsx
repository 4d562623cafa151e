// The pages before the wall: sign-in, an invitation, choosing a company.
import { useEffect, useState } from "react";
import type { AuthConfig, InvitationPreview, PendingInvite, SessionInfo } from "./session";
import { acceptInvitation, AuthError, loginUrl, previewInvitation, reasonOf, refresh } from "./session";

function Provider({ config, purpose }: { config: AuthConfig; purpose?: string }) {
  if (!config.sign_in) return <p>Sign-in is not configured on this server (see OIDC_ISSUER in the operator guide).</p>;
  return (
    <a className="button primary" href={loginUrl("/")} data-testid="sign-in">
      Sign in with {config.provider_name ?? "your identity provider"}{purpose ? ` ${purpose}` : ""}
    </a>
  );
}

export function SignIn({ config, reason, notice, onToken }: {
  config: AuthConfig; reason?: string; notice?: string; onToken: (token: string) => void;
}) {
  const [value, setValue] = useState("");
  return (
    <main className="signin">
      <h1>Creator Control Room</h1>
      {reason && <p role="alert" className="refused" data-testid="signed-out-reason">Signed out: {reason}</p>}
      {notice && <p role="status" data-testid="signed-out-notice">{notice}</p>}
      <Provider config={config} />
      {config.dev_token_sign_in && (
        <form onSubmit={(e) => { e.preventDefault(); if (value.trim()) onToken(value.trim()); }}>
          <h2>Development sign-in</h2>
          <label htmlFor="token">Access token (DEV_TOKEN_SIGN_IN is on)</label>
          <textarea id="token" value={value} onChange={(e) => setValue(e.target.value)} rows={4} />
          <button type="submit">Sign in with this token</button>
        </form>
      )}
    </main>
  );
}

function goneReason(err: unknown): string {
  if (err instanceof AuthError && err.status === 410) return "it has expired, has been used already or was revoked. Ask for a new one.";
  if (err instanceof AuthError && err.status === 404) return "it does not exist. Check the link.";
  return reasonOf(err);
}

export function Invite({ config, invite, info, onDone, onSignOut }: {
  config: AuthConfig;
  invite: PendingInvite;
  info: SessionInfo | null;
  onDone: (info: SessionInfo | null) => void;
  onSignOut: () => void;
}) {
  const [preview, setPreview] = useState<InvitationPreview | null>(null);
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const [wrongPerson, setWrongPerson] = useState(false);
  useEffect(() => {
    previewInvitation(invite.company, invite.token).then(setPreview, (err) => setError(`This invitation cannot be used: ${goneReason(err)}`));
  }, [invite]);

  async function accept() {
    setBusy(true);
    setError("");
    try {
      try {
        await acceptInvitation(invite.company, invite.token);
      } catch (err) {
        if (!(err instanceof AuthError && err.status === 409)) throw err; // already a member: just enter
      }
      onDone(await refresh(invite.company));
    } catch (err) {
      if (err instanceof AuthError && err.status === 403 && preview && info) {
        setWrongPerson(true);
        setError(`This invitation is for ${preview.email}, and you are signed in as ${info.person.email ?? info.person.subject}. Sign out, then sign in as ${preview.email}.`);
      } else setError(`This invitation cannot be used: ${goneReason(err)}`);
      setBusy(false);
    }
  }

  const open = preview && preview.status === "pending";
  return (
    <main className="signin" data-testid="invitation">
      <h1>Creator Control Room</h1>
      {!preview && !error && <p aria-busy="true">Looking up your invitation…</p>}
      {preview && (
        <section>
          <h2>Join {preview.company_name}</h2>
          <p>
            You are invited as <strong>{preview.role}</strong> ({preview.email}).
            {open && <> The invitation expires on {new Date(preview.expires_at).toLocaleDateString()}.</>}
          </p>
          {!open && <p role="alert" className="refused">This invitation is {preview.status}.</p>}
        </section>
      )}
      {error && <p role="alert" className="refused" data-testid="invitation-error">{error}</p>}
      <div className="actions">
        {open && !info && <Provider config={config} purpose="to accept" />}
        {open && info && !wrongPerson && (
          <>
            <p className="muted">Signed in as {info.person.email ?? info.person.subject}.</p>
            <button className="primary" disabled={busy} onClick={() => void accept()} data-testid="invite-accept">
              Accept and open the wall
            </button>
          </>
        )}
        {info && <button onClick={() => onDone(info)}>{open ? "Not now" : "Continue"}</button>}
        {info && error && <button className={wrongPerson ? "primary" : ""} onClick={onSignOut}>Sign out</button>}
        {!info && !open && (preview || error) && <button onClick={() => onDone(null)}>Back to sign-in</button>}
      </div>
    </main>
  );
}

export function CompanyPicker({ info, onPick, onSignOut }: {
  info: SessionInfo; onPick: (companyId: string) => void; onSignOut: () => void;
}) {
  return (
    <main className="signin" data-testid="company-picker">
      <h1>Choose a company</h1>
      <p>Signed in as {info.person.email ?? info.person.subject}.</p>
      <ul className="choices">
        {info.companies.map((c) => (
          <li key={c.id}>
            <button onClick={() => onPick(c.id)} disabled={c.status !== "active"}>
              {c.name} <span className="muted">· {c.role}{c.status !== "active" ? ` · ${c.status}` : ""}</span>
            </button>
          </li>
        ))}
      </ul>
      <button onClick={onSignOut}>Sign out</button>
    </main>
  );
}

export function NoCompany({ info, onSignOut }: { info: SessionInfo; onSignOut: () => void }) {
  return (
    <main className="signin" data-testid="no-company">
      <h1>Creator Control Room</h1>
      <p>Signed in as {info.person.email ?? info.person.subject}.</p>
      <p>
        You are not a member of any company yet. Ask an owner or admin of your agency for an
        invitation, then open its link.
      </p>
      {info.platform_operator && (
        <p className="muted">You are a platform operator: companies are managed with <code>controlroom company</code> or the platform API.</p>
      )}
      <button onClick={onSignOut}>Sign out</button>
    </main>
  );
}
