/**
 * Self-signed certificate for the dev SMTP sink: CN=localhost, subjectAltName DNS:localhost and IP:127.0.0.1,
 * valid 2025-01-01 to 2125-01-01 (RSA 2048, SHA-256). It is its own CA, so a client verifies the sink by passing
 * `cert` as `tls.ca` with `servername: 'localhost'`.
 *
 * The private key is public: this is for tests on 127.0.0.1 only, never for a real server. It is embedded as
 * strings rather than read from a .pem file so that it ships inside the built package.
 *
 * Made with `openssl ca -selfsign` rather than `openssl req -x509` because OpenSSL 3.0's `req` cannot backdate
 * notBefore, and a certificate that starts "now" fails on a machine whose clock runs a little behind.
 */
export const testCertificate: { readonly key: string; readonly cert: string } = {
  key: `-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC+jAB/g0JCNvsw
uds1RaXRF4efLNiC+vMNcrRPg14JF61zaiOUfN4j+pixyj1I8e3Wk9uVHQ8jjIWv
K5x/QOgZN4DkZUjNAAUeTqvF7ewXUWrJj2asYcCKudCTbpcrAyvsZtJxmeypLvUo
ww4cjdY2CjJZbROSwe53qa9S5sNzJ/+2j0Tn8mRkk7Ts6FkeZzPFkSlzzLRJNNXH
I45biTmHa2ojJ4Ocp8jnKvb5871lX8X08wkXindD5YcOelI/fBJAUrevL5XZg8vD
lPaJI5qVoFa0zKBu31vOAVVaEAreFen+qks0H6UBdXqH3IRNv2+ATauTbyotsLnW
dhgRECQVAgMBAAECggEACRmiw3Q8w5tLG1G2VktlfCssGGNvUrASpWDbRinfYZPz
03LX+1U2/w+5NP0pjfSJ7T53VUjY6n52paicSy00eHyAsh0Oi/B/42mSmru+aQMD
1IJTVGZrEuUFa6keMe5vQwAfyvpKMG6e7uuuiUQSh9cBqROEb1+bgzOuJ8mAFPLY
t86GotgFNw74qX1ZSuwrSgmSepoznomVbeL4dQXajLEPJYKWi5Ukedj4weUwb2rQ
jIMaN1uMiFvi/4Xm9CfPo16eBTiSj57ZMkHQlwH0gBRrQ5XSfOSfz18134dzCb/z
wiZGZb/nXadUjNu89L/kdgTI/Ftu/95UHMBI//nXQQKBgQDnansvzGU87o0rCOqV
uT6OyLFwE6iYUo7fdfEIzMw3g4zslxXKDR+v3vzwPUSk53ujappNN2l5uaantEvP
4N8R5ekH1ctiCY8ve6J4yO97xyLj/z47CUuOlKrnOuK2VUmn7y1JGvxMONUhflLJ
Sue/QWmyuD09C3okPSkU5uMfQQKBgQDSyg7aPD+QPi5P494guV90YUp5XcuUSwNX
48vIviwbz0uwMNUQs8GzixrNuAvzEgIntRqyaxIUStft6WSOBScfdcIJj2rN7qlz
0d3u5zUioKOTW3MA7sCugTzBQbbe1YFbYxVHgn6misateKs4AnrkgsHWZZXxCPCs
wL1MUcFj1QKBgQCmbhksNia1HKdgROhZR8Gq9MFP5oOBERb5tRvlhUx1vGF0ofAk
wS2B0bA9owKkSmrMC1XvpKNxzMgDopJHbeVgPOZMIUFFP7S/pH4jufcqIPyB1sbN
tJCneVo0NFBqa4ougcAi7Ip40wLNNMmbRQjIruWyh/ha188/EtFh2++KQQKBgDq6
Jucwj/kNCfQiJVnyq6COFqS3uCdputW61qToLvvUhl7hTAtqOZZfNCmKlHG1W7pa
X8TDxfa3X2+ebfCPiPXf5h6pwXT8gGOPXgjYi9pI7Sn5+ZGR80brJNUnDN8Klw6y
DVSuC8E0uuPL0dA6CKkvsPedt+e+uOc4j8T6pim9AoGAVBkTc3uCFGlBC3WG3ecR
snXl2TpfFrDjn58FEI4xTNnUW0/2vRPRP7P1DB6wK+JOZlt+IR+cFZ/tviX7GgSS
4m1j8Tm71e8D39XRsGjTn15XBH2O7xbDJI4fZAEm1djjpOscqbPtRcs0f+018Upl
a7XJB1iPQ0UylBABS5qIykg=
-----END PRIVATE KEY-----\n`,
  cert: `-----BEGIN CERTIFICATE-----
MIIDKDCCAhCgAwIBAgIRAOjIy2p8iNUQiXMpoh++zj0wDQYJKoZIhvcNAQELBQAw
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI1MDEwMTAwMDAwMFoYDzIxMjUwMTAx
MDAwMDAwWjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwggEiMA0GCSqGSIb3DQEBAQUA
A4IBDwAwggEKAoIBAQC+jAB/g0JCNvswuds1RaXRF4efLNiC+vMNcrRPg14JF61z
aiOUfN4j+pixyj1I8e3Wk9uVHQ8jjIWvK5x/QOgZN4DkZUjNAAUeTqvF7ewXUWrJ
j2asYcCKudCTbpcrAyvsZtJxmeypLvUoww4cjdY2CjJZbROSwe53qa9S5sNzJ/+2
j0Tn8mRkk7Ts6FkeZzPFkSlzzLRJNNXHI45biTmHa2ojJ4Ocp8jnKvb5871lX8X0
8wkXindD5YcOelI/fBJAUrevL5XZg8vDlPaJI5qVoFa0zKBu31vOAVVaEAreFen+
qks0H6UBdXqH3IRNv2+ATauTbyotsLnWdhgRECQVAgMBAAGjczBxMA8GA1UdEwEB
/wQFMAMBAf8wDgYDVR0PAQH/BAQDAgKkMBMGA1UdJQQMMAoGCCsGAQUFBwMBMBoG
A1UdEQQTMBGCCWxvY2FsaG9zdIcEfwAAATAdBgNVHQ4EFgQU0ZKiY77P5SSGiAwI
RsmJIPyVkcAwDQYJKoZIhvcNAQELBQADggEBAGcPjx9NAG51NfQueDZpRJxD54aJ
cOZLcT4KqM0Hcw+p4z6F+MjdKlZTK3gE63hCI05+CTbuBkGKCj/9sZQvMe8EcEz+
BTLo8JwWlTJrkGEuIacIKT7hT/xqZ/6n6TO7vHlqgmqUbPWTivAR77UG+evi19ZH
oQYcT6Ue527NTtNFnnx/obbtlxB41wrPpL1dYxqO3AI3ZnvsYMfY34J7EKoB9ZpH
yakxmcz74paOwa2Zrh77zVZGg1iUj3Ytk7DuVgfBENviYc8yRi4sR8trOZn5dEHj
eaY4FYwRe6pJgJh5OPg0nU+2+7hG5/YaWemX4GWnaqyR40tSOOTiPdX+lS8=
-----END CERTIFICATE-----\n`,
};
