/**
 * Checks of the official MCP conformance suite that are known to fail against Gatehouse, each with its reason. The
 * conformance test tolerates exactly these (and fails when one starts passing); docs/tested-clients.md explains them.
 */
export const EXPECTED_CONFORMANCE_FAILURES: Readonly<Record<string, string>> = {};
