// A "browser" for the pairing e2e tests (tests/e2e/test_doctor.py, test_updates.py): the real
// gateway's own client with a device identity kept in IDENTITY_FILE, so a second run is the same
// device. Connects once to URL with the shared TOKEN and prints one JSON line: {"connected": true}
// on hello-ok, else the error and the close code and reason.
//   node pair_client.mjs URL TOKEN IDENTITY_FILE
// GATEWAY_DIST names the gateway's dist/ directory:
// - clawdbot 2026.1.24-3 (docs/host-facts.md §5): dist/gateway/client.js and
//   dist/infra/device-identity.js; the identity file is created on the first run;
// - openclaw 2026.9.x (docs/host-facts.md §8): bundled chunks with hashed names (client-<hash>.mjs),
//   so GatewayClient is found by its class name; it speaks protocol 4, which the gateway
//   requires of clients (clawdbot's client speaks 3). The identity file is the one clawdbot's
//   client wrote: a browser keeps its key pair across the gateway's update (openclaw keeps its
//   own identities in SQLite, which a browser never reads). It connects as the Control UI does
//   (`openclaw-control-ui`, mode `ui`, the gateway's build id) with the Origin in GATEWAY_ORIGIN:
//   openclaw checks a browser's Origin against the request's Host (a `*.ts.net` name behind
//   Serve).
import { createHash, generateKeyPairSync } from "node:crypto";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";

const [url, token, identityFile] = process.argv.slice(2);
const dist = process.env.GATEWAY_DIST ?? "/opt/clawdbot/node_modules/clawdbot/dist";

// openclaw's bundle keeps function and class names, not its exports' names
async function openclawExport(prefix, name) {
  for (const file of readdirSync(dist).filter((f) => f.startsWith(prefix) && f.endsWith(".mjs"))) {
    const mod = await import(`${dist}/${file}`);
    const found = Object.values(mod).find((v) => typeof v === "function" && v.name === name);
    if (found) return found;
  }
  throw new Error(`no ${name} in ${dist}/${prefix}*.mjs`);
}

let GatewayClient;
let identity;
let clientName;
let mode = "webchat";
let clientBuildId;
if (existsSync(`${dist}/gateway/client.js`)) {
  ({ GatewayClient } = await import(`${dist}/gateway/client.js`));
  const { loadOrCreateDeviceIdentity } = await import(`${dist}/infra/device-identity.js`);
  identity = loadOrCreateDeviceIdentity(identityFile);
  clientName = "clawdbot-control-ui";
} else {
  GatewayClient = await openclawExport("client-", "GatewayClient");
  // the Control UI the gateway serves carries the gateway's build id; another is refused
  // ("protocol mismatch: Control UI updated")
  clientBuildId = (await openclawExport("version-", "resolveRuntimeServiceBuildId"))();
  if (!existsSync(identityFile)) {
    // a new browser: a key pair in clawdbot's file format (ed25519; the id is the sha256 of the
    // raw public key, the last 32 bytes of its SPKI form)
    const { publicKey, privateKey } = generateKeyPairSync("ed25519");
    const raw = publicKey.export({ type: "spki", format: "der" }).subarray(-32);
    const created = {
      version: 1,
      deviceId: createHash("sha256").update(raw).digest("hex"),
      publicKeyPem: publicKey.export({ type: "spki", format: "pem" }),
      privateKeyPem: privateKey.export({ type: "pkcs8", format: "pem" }),
      createdAtMs: Date.now(),
    };
    writeFileSync(identityFile, `${JSON.stringify(created, null, 2)}\n`, { mode: 0o600 });
  }
  const stored = JSON.parse(readFileSync(identityFile, "utf8"));
  identity = {
    deviceId: stored.deviceId,
    publicKeyPem: stored.publicKeyPem,
    privateKeyPem: stored.privateKeyPem,
  };
  clientName = "openclaw-control-ui";
  mode = "ui";
}
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
  clientName,
  clientDisplayName: "e2e browser",
  mode,
  ...(clientBuildId ? { clientBuildId } : {}),
  ...(process.env.GATEWAY_ORIGIN ? { origin: process.env.GATEWAY_ORIGIN } : {}),
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
