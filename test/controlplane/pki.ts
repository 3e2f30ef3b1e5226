// Certificates for the local control plane: one CA per cluster, a serving certificate for
// its API server, and client certificates whose CN is the user and O the groups, exactly as
// kube-apiserver's x509 authenticator reads them.
// @peculiar/x509 resolves its algorithms through tsyringe, which needs the Reflect API.
import "reflect-metadata";
import { webcrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

const ecdsa = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
const day = 24 * 60 * 60 * 1000;

export interface KeyPair {
  certPem: string;
  keyPem: string;
}

export interface CertificateAuthority extends KeyPair {
  issue(options: IssueOptions): Promise<KeyPair>;
}

export interface IssueOptions {
  commonName: string;
  organizations?: string[];
  /** DNS names and IP addresses for a serving certificate. */
  hosts?: string[];
  usage: "server" | "client";
}

async function newKeys(): Promise<CryptoKeyPair> {
  return webcrypto.subtle.generateKey(ecdsa, true, ["sign", "verify"]);
}

async function privateKeyPem(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey("pkcs8", key);
  return x509.PemConverter.encode(der, "PRIVATE KEY");
}

function subject(commonName: string, organizations: string[] = []): x509.JsonName {
  return [{ CN: [commonName] }, ...organizations.map((o) => ({ O: [o] }))];
}

const ipPattern = /^(\d{1,3}\.){3}\d{1,3}$|:/;

/** A new self-signed CA; `issue` signs leaf certificates with it. */
export async function createCertificateAuthority(name: string): Promise<CertificateAuthority> {
  const keys = await newKeys();
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: subject(name),
    keys,
    notBefore: new Date(now - day),
    notAfter: new Date(now + 365 * day),
    signingAlgorithm: ecdsa,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const certPem = cert.toString("pem");
  return {
    certPem,
    keyPem: await privateKeyPem(keys.privateKey),
    async issue(options: IssueOptions): Promise<KeyPair> {
      const leafKeys = await newKeys();
      const extensions: x509.Extension[] = [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
          true,
        ),
        new x509.ExtendedKeyUsageExtension([
          options.usage === "server" ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth,
        ]),
        await x509.AuthorityKeyIdentifierExtension.create(keys.publicKey),
      ];
      if (options.hosts?.length) {
        extensions.push(
          new x509.SubjectAlternativeNameExtension(
            options.hosts.map((h) =>
              ipPattern.test(h) ? { type: "ip", value: h } : { type: "dns", value: h },
            ),
          ),
        );
      }
      const leaf = await x509.X509CertificateGenerator.create({
        subject: subject(options.commonName, options.organizations),
        issuer: cert.subjectName,
        publicKey: leafKeys.publicKey,
        signingKey: keys.privateKey,
        notBefore: new Date(now - day),
        notAfter: new Date(now + 365 * day),
        signingAlgorithm: ecdsa,
        extensions,
      });
      return { certPem: leaf.toString("pem"), keyPem: await privateKeyPem(leafKeys.privateKey) };
    },
  };
}

/** A key pair for signing (private, PKCS#8) and verifying (public, SPKI) service-account tokens. */
export async function createSigningKey(): Promise<{ privatePem: string; publicPem: string }> {
  const keys = await newKeys();
  const spki = await webcrypto.subtle.exportKey("spki", keys.publicKey);
  return {
    privatePem: await privateKeyPem(keys.privateKey),
    publicPem: x509.PemConverter.encode(spki, "PUBLIC KEY"),
  };
}
