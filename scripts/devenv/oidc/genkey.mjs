// Create (once) the OIDC provider's RSA signing key and (always) write its public JWKS.
//   node genkey.mjs <private-jwks.json> <public-jwks.json> [<public-jwks.json> ...]
// The private key is persisted so that its kid (RFC 7638 thumbprint) is stable across restarts:
// Slurm reads its jwks= file only at daemon start. Uses Node built-ins only (no node_modules).
import { generateKeyPairSync, createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync, renameSync } from 'node:fs';

const [privPath, ...pubPaths] = process.argv.slice(2);
if (!privPath || pubPaths.length === 0) {
  console.error('usage: genkey.mjs PRIVATE_JWKS PUBLIC_JWKS...');
  process.exit(2);
}

function writeAtomic(path, text, mode) {
  const tmp = `${path}.tmp${process.pid}`;
  writeFileSync(tmp, text, { mode });
  renameSync(tmp, path);
}

let priv;
if (existsSync(privPath)) {
  priv = JSON.parse(readFileSync(privPath, 'utf8')).keys[0];
} else {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  priv = privateKey.export({ format: 'jwk' });
  const thumbprint = createHash('sha256')
    .update(JSON.stringify({ e: priv.e, kty: 'RSA', n: priv.n }))
    .digest('base64url');
  priv = { ...priv, kid: thumbprint, alg: 'RS256', use: 'sig' };
  writeAtomic(privPath, `${JSON.stringify({ keys: [priv] }, null, 2)}\n`, 0o600);
}

const pub = { kty: priv.kty, kid: priv.kid, use: 'sig', alg: 'RS256', e: priv.e, n: priv.n };
const text = `${JSON.stringify({ keys: [pub] }, null, 2)}\n`;
for (const p of pubPaths) {
  if (!existsSync(p) || readFileSync(p, 'utf8') !== text) writeAtomic(p, text, 0o644);
}
process.stdout.write(`${priv.kid}\n`);
