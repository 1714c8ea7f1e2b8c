// A "browser" for the pairing e2e test (tests/e2e/test_scenarios.py): the real gateway's own
// client (dist/gateway/client.js, docs/host-facts.md §5) with a device identity kept in IDENTITY_FILE,
// so a second run is the same device. Connects once to URL with the shared TOKEN and prints one
// JSON line: {"connected": true} on hello-ok, else the error and the close code and reason.
//   node pair_client.mjs URL TOKEN IDENTITY_FILE
const [url, token, identityFile] = process.argv.slice(2);
const dist = process.env.GATEWAY_DIST ?? "/opt/clawdbot/node_modules/clawdbot/dist";
const { GatewayClient } = await import(`${dist}/gateway/client.js`);
const { loadOrCreateDeviceIdentity } = await import(`${dist}/infra/device-identity.js`);

const identity = loadOrCreateDeviceIdentity(identityFile);
const result = { deviceId: identity.deviceId, connected: false };
let client;
const finish = () => {
  client?.stop();
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
};
client = new GatewayClient({
  url,
  token,
  deviceIdentity: identity,
  clientName: "clawdbot-control-ui",
  clientDisplayName: "e2e browser",
  mode: "webchat",
  platform: "e2e-linux",
  onHelloOk: () => {
    result.connected = true;
    finish();
  },
  onConnectError: (err) => {
    result.error = String(err?.message ?? err);
  },
  onClose: (code, reason) => {
    result.code = code;
    result.reason = reason;
    finish();
  },
});
client.start();
setTimeout(() => {
  result.timeout = true;
  finish();
}, 30000);
