/**
 * DEVELOPMENT ONLY — the local identity provider's sign-in page: a plain form, labelled, usable without JavaScript,
 * every dynamic value escaped. The banner says plainly that this is not a real identity provider.
 */
const escapeHtml = (value: string): string =>
  value.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);

export interface LoginPageInput {
  uid: string;
  clientName: string;
  loginHint?: string;
  error?: string;
  users: Array<{ username: string; name: string }>;
  /** Set when the request's `claims` asks for MFA: the code to type, shown here because this is only a demo. */
  oneTimeCode?: string;
}

/** The second factor a Conditional Access claims challenge asks for (Entra: the authenticator prompt). */
function mfaStep(oneTimeCode: string | undefined): string {
  if (oneTimeCode === undefined) return '';
  return `<p class="mfa" role="note">Your organisation requires multi-factor authentication for this resource. Demo verification code: <strong id="demo-otp">${escapeHtml(oneTimeCode)}</strong></p>
<label for="otp">Verification code</label>
<input id="otp" name="otp" inputmode="numeric" autocomplete="one-time-code" required>
`;
}

export function renderLoginPage(input: LoginPageInput): string {
  const action = `/interaction/${encodeURIComponent(input.uid)}/login`;
  const error = input.error ? `<p class="error" role="alert">${escapeHtml(input.error)}</p>` : '';
  const userList = input.users
    .map((user) => `<li><code>${escapeHtml(user.username)}</code> — ${escapeHtml(user.name)}</li>`)
    .join('');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in — local identity provider (development only)</title>
<style>
body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
.banner{background:#8a4b00;color:#fff;padding:.5rem 1rem;text-align:center;font-weight:600}
main{max-width:26rem;margin:3rem auto;background:#fff;padding:2rem;border-radius:8px;box-shadow:0 1px 4px #0002}
label{display:block;margin-top:1rem;font-weight:600}
input{width:100%;box-sizing:border-box;padding:.5rem;font:inherit;border:1px solid #8892a6;border-radius:4px}
.actions{display:flex;gap:.5rem;margin-top:1.5rem}
button{font:inherit;padding:.5rem 1rem;border-radius:4px;border:1px solid #1d4ed8;cursor:pointer}
button[value=login]{background:#1d4ed8;color:#fff}
button[value=cancel]{background:#fff;color:#1d4ed8}
.error{color:#a40e26;font-weight:600}
details{margin-top:1.5rem;color:#4a5468}
</style>
</head>
<body>
<div class="banner" role="note">Local identity provider — for development and tests only. Not a real sign-in.</div>
<main>
<h1>Sign in</h1>
<p>to continue to <strong>${escapeHtml(input.clientName)}</strong></p>
${error}
<form method="post" action="${escapeHtml(action)}">
<label for="username">Username</label>
<input id="username" name="username" autocomplete="username" required value="${escapeHtml(input.loginHint ?? '')}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password">
${mfaStep(input.oneTimeCode)}<div class="actions">
<button type="submit" name="action" value="login">Sign in</button>
<button type="submit" name="action" value="cancel" formnovalidate>Cancel</button>
</div>
</form>
<details><summary>Test users</summary><ul>${userList}</ul><p>Passwords are printed when the demo starts.</p></details>
</main>
</body>
</html>`;
}
