/*
 * coap-edge's mbedTLS configuration, appended to mbedTLS's default configuration
 * (include/mbedtls/mbedtls_config.h) when the pinned tarball is unpacked, and installed with the
 * headers. mbedTLS itself, libcoap and coap-edge therefore compile against one configuration by
 * construction: a user config seen by only some translation units changes struct layouts
 * (e.g. the renegotiation fields of mbedtls_ssl_context) and silently breaks the ABI.
 *
 * What we want from the stack: DTLS 1.2 only, with cookies, anti-replay and Connection ID
 * (RFC 9146), the RFC 7252 mandatory suites plus their AES-128-GCM variants, nothing else.
 */
#ifndef COAP_EDGE_MBEDTLS_CONFIG_H
#define COAP_EDGE_MBEDTLS_CONFIG_H

/* TLS 1.3 is not used over DTLS here, and renegotiation is a precondition of CVE-2026-50713
 * (together with a bad-MAC limit, which we never set: see MBEDTLS_SSL_DTLS_BADMAC_LIMIT below). */
#undef MBEDTLS_SSL_PROTO_TLS1_3
#undef MBEDTLS_SSL_TLS1_3_COMPATIBILITY_MODE
#undef MBEDTLS_SSL_RENEGOTIATION
#undef MBEDTLS_SSL_DTLS_BADMAC_LIMIT
#undef MBEDTLS_SSL_EARLY_DATA

/* Key exchanges we do not offer: only PSK and ECDHE-ECDSA (RFC 7252 §9.1.3.1, §9.1.3.3). */
#undef MBEDTLS_KEY_EXCHANGE_DHE_PSK_ENABLED
#undef MBEDTLS_KEY_EXCHANGE_ECDHE_PSK_ENABLED
#undef MBEDTLS_KEY_EXCHANGE_RSA_PSK_ENABLED
#undef MBEDTLS_KEY_EXCHANGE_RSA_ENABLED
#undef MBEDTLS_KEY_EXCHANGE_DHE_RSA_ENABLED
#undef MBEDTLS_KEY_EXCHANGE_ECDHE_RSA_ENABLED
#undef MBEDTLS_KEY_EXCHANGE_ECDH_ECDSA_ENABLED
#undef MBEDTLS_KEY_EXCHANGE_ECDH_RSA_ENABLED
/* Finite-field Diffie-Hellman only serves the DHE suites above. With it, every server
 * mbedtls_ssl_config_defaults() (one per DTLS session in libcoap) loads RFC 3526's 2048-bit group:
 * about 0.3 KB of heap per session for nothing. */
#undef MBEDTLS_DHM_C

/* The peer's certificate is not kept parsed after the handshake (about 1.6 KB per X.509 session):
 * the agent takes the CN and serial it needs in its verify hook, while the chain is verified.
 * Mbed TLS still keeps a digest of it. */
#undef MBEDTLS_SSL_KEEP_PEER_CERTIFICATE

/* The order is our preference: CCM_8 first (what constrained nodes implement), then GCM. */
#define MBEDTLS_SSL_CIPHERSUITES                       \
    MBEDTLS_TLS_PSK_WITH_AES_128_CCM_8,                \
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8,        \
    MBEDTLS_TLS_PSK_WITH_AES_128_GCM_SHA256,           \
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256

/* DTLS features the gateway relies on (defaults in 3.6, stated so that a change is visible). */
#define MBEDTLS_SSL_PROTO_DTLS
#define MBEDTLS_SSL_DTLS_HELLO_VERIFY
#define MBEDTLS_SSL_DTLS_ANTI_REPLAY
#define MBEDTLS_SSL_DTLS_CONNECTION_ID
#define MBEDTLS_SSL_COOKIE_C

/* Record buffers sized to CoAP PDUs instead of 16 KB TLS records: the largest cost per session
 * (DEPENDENCIES.md: 44.6 KB -> 14.4 KB per session). 2 KB holds a 1152-byte CoAP PDU plus
 * headers and a P-256 certificate flight. */
#define MBEDTLS_SSL_IN_CONTENT_LEN  2048
#define MBEDTLS_SSL_OUT_CONTENT_LEN 2048

/* Only the handshake needs those 2 KB (whole certificate messages). Once it is over, the
 * buffers shrink (our patch cmake/mbedtls/patches/0001) to what libcoap can hand over: it
 * reads at most COAP_RXBUFFER_SIZE (1472) bytes per datagram and gives Mbed TLS one datagram
 * at a time, and writes records of at most the session's MTU (COAP_DEFAULT_MTU, 1152, which
 * it also sets with mbedtls_ssl_set_mtu()). About 1.4 KB less per established session. */
#define MBEDTLS_SSL_VARIABLE_BUFFER_LENGTH
#define MBEDTLS_SSL_IN_CONTENT_LEN_ESTABLISHED  1472
#define MBEDTLS_SSL_OUT_CONTENT_LEN_ESTABLISHED 1152

/* No CBC: none of our suites uses it, and with it every record buffer reserves 256 bytes of
 * CBC padding and a 48-byte HMAC (MBEDTLS_SSL_PAYLOAD_OVERHEAD): 0.6 KB per session. (PEM keys
 * encrypted with a password need CBC; coap-edge never reads password-protected keys.) */
#undef MBEDTLS_CIPHER_MODE_CBC

/* AES-128 only, the key size of all our suites: each AES context keeps room for 128-bit round
 * keys instead of 256-bit ones (0.2 KB per session: one context per direction). The CTR-DRBG
 * then uses AES-128 too, a 128-bit security strength like the suites'. VIA PadLock would need
 * the larger context. */
#define MBEDTLS_AES_ONLY_128_BIT_KEY_LENGTH
#define MBEDTLS_CTR_DRBG_USE_128_BIT_KEY
#undef MBEDTLS_PADLOCK_C

#endif /* COAP_EDGE_MBEDTLS_CONFIG_H */
