// The one key-encryption key every test server uses: the run's shared database holds signing
// keys sealed under it, so a server started with another KEK could not open them.

/** KEYWARD_KEY_ENCRYPTION_KEY of every test server on the shared database (32 bytes, base64; a test value, never a real one). */
export const testKeyEncryptionKey = Buffer.alloc(32, "keyward-test-kek").toString("base64");
