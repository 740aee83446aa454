import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { errors as joseErrors } from 'jose';
import { authorizationResponseError, failureDetail, UpstreamError } from '../../src/upstream/errors.ts';

describe('failureDetail: why an identity provider call failed, as a log may hold it', () => {
  it('names the chain, the claim a JWT check named, and the check, never a response body', () => {
    const jose = new joseErrors.JWTClaimValidationFailed('unexpected "aud" claim value', { aud: 'someone-else' }, 'aud', 'check_failed');
    const wrapped = new UpstreamError('access_denied', "The identity provider's ID token failed validation.", {}, { cause: jose });
    const detail = failureDetail(wrapped);
    assert.match(String(detail.failure), /^UpstreamError\(access_denied\) ← JWTClaimValidationFailed\(ERR_JWT_CLAIM_VALIDATION_FAILED\)$/);
    assert.equal(detail.claim, 'aud');
    assert.equal(detail.check, 'unexpected "aud" claim value');
    assert.ok(!JSON.stringify(detail).includes('someone-else'), 'the claim values are not logged');
  });

  it('leaves out the message of anything that is not a library check (it may quote a body)', () => {
    const detail = failureDetail(new Error('server said: {"id_token":"eyJ..."}', { cause: { name: 'ResponseBodyError', code: 'OAUTH_RESPONSE_BODY_ERROR', message: 'server responded with an error in the response body' } }));
    assert.equal(detail.check, 'server responded with an error in the response body');
    assert.ok(!JSON.stringify(detail).includes('eyJ'));
  });

  it("names the specific check openid-client wrapped in its generic one (an `iss` of another issuer: a mix-up)", () => {
    const inner = Object.assign(new Error('unexpected "iss" (issuer) response parameter value'), { name: 'OperationProcessingError', code: 'OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED' });
    const outer = Object.assign(new Error('invalid response encountered', { cause: inner }), { name: 'ClientError', code: 'OAUTH_INVALID_RESPONSE' });
    assert.equal(failureDetail(new UpstreamError('access_denied', 'The sign-in response was refused.', {}, { cause: outer })).check, 'unexpected "iss" (issuer) response parameter value');
  });

  it("keeps an IdP's error code from the callback URL only as a code can be: no escapes, no quotes, no unbounded length", () => {
    assert.equal(authorizationResponseError('access_denied', 'i1').upstreamError, 'access_denied');
    assert.equal(authorizationResponseError('invalid_request_uri', 'i1').upstreamError, 'invalid_request_uri');
    for (const sent of ['\u001b]0;pwned\u0007', 'a"b', 'x'.repeat(65), 'tab\there', 'é']) {
      assert.equal(authorizationResponseError(sent, 'i1').upstreamError, 'unreadable_error_code', JSON.stringify(sent));
    }
    // A token short enough to pass for a code is still not logged.
    assert.equal(authorizationResponseError('eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.c2lnbmF0dXJl', 'i1').upstreamError, '[REDACTED]');
  });
});
