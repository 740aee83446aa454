/**
 * Public paths other parts must know without importing the part that serves them: the local identity provider of
 * the demo registers the console's sign-out return address as a `post_logout_redirect_uri`.
 */
export const SIGNED_OUT_PATH = '/admin/signed-out';
