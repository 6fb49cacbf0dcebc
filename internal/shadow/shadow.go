// Package shadow makes password hashes for /etc/shadow, so that a password
// reaches an image only as a hash (SHA-512 crypt, "$6$", which every glibc
// and chpasswd -e accept).
package shadow

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"strings"
)

const (
	rounds  = 5000 // the SHA-crypt default, so the hash has no rounds= field
	itoa64  = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	saltLen = 16
)

// MaxPasswordBytes is the longest password a login can match: libxcrypt,
// the system crypt PAM checks passwords with, refuses a longer one
// (CRYPT_MAX_PASSPHRASE_SIZE is 512 with the terminating NUL), so its hash
// could never be reached.
const MaxPasswordBytes = 511

// Hash returns the SHA-512 crypt hash of password with a salt derived from
// context (e.g. "project/user") and the password. The salt is deterministic
// so that configuring the same project twice gives byte-identical files; it
// differs between users and projects, so equal passwords do not give equal
// hashes across them.
func Hash(password, context string) string {
	mac := hmac.New(sha256.New, []byte(password))
	mac.Write([]byte("pei-shadow-salt\x00" + context))
	sum := mac.Sum(nil)
	salt := make([]byte, saltLen)
	for i := range salt {
		salt[i] = itoa64[int(sum[i])%len(itoa64)]
	}
	return Crypt(password, string(salt))
}

// Crypt computes SHA-512 crypt (Ulrich Drepper's specification) of key with
// the given salt (at most 16 characters are used).
func Crypt(key, salt string) string {
	if len(salt) > saltLen {
		salt = salt[:saltLen]
	}
	k, s := []byte(key), []byte(salt)

	b := sha512.New()
	b.Write(k)
	b.Write(s)
	b.Write(k)
	sumB := b.Sum(nil)

	a := sha512.New()
	a.Write(k)
	a.Write(s)
	for i := len(k); i > 0; i -= 64 {
		a.Write(sumB[:min(i, 64)])
	}
	for i := len(k); i > 0; i >>= 1 {
		if i&1 != 0 {
			a.Write(sumB)
		} else {
			a.Write(k)
		}
	}
	sumA := a.Sum(nil)

	dp := sha512.New()
	for range k {
		dp.Write(k)
	}
	p := repeat(dp.Sum(nil), len(k))

	ds := sha512.New()
	for i := 0; i < 16+int(sumA[0]); i++ {
		ds.Write(s)
	}
	sBytes := repeat(ds.Sum(nil), len(s))

	c := sumA
	for i := 0; i < rounds; i++ {
		h := sha512.New()
		if i&1 != 0 {
			h.Write(p)
		} else {
			h.Write(c)
		}
		if i%3 != 0 {
			h.Write(sBytes)
		}
		if i%7 != 0 {
			h.Write(p)
		}
		if i&1 != 0 {
			h.Write(c)
		} else {
			h.Write(p)
		}
		c = h.Sum(nil)
	}

	var out strings.Builder
	out.WriteString("$6$" + salt + "$")
	enc := func(b2, b1, b0 byte, n int) {
		w := uint(b2)<<16 | uint(b1)<<8 | uint(b0)
		for ; n > 0; n-- {
			out.WriteByte(itoa64[w&0x3f])
			w >>= 6
		}
	}
	order := [][3]int{
		{0, 21, 42}, {22, 43, 1}, {44, 2, 23}, {3, 24, 45}, {25, 46, 4}, {47, 5, 26}, {6, 27, 48},
		{28, 49, 7}, {50, 8, 29}, {9, 30, 51}, {31, 52, 10}, {53, 11, 32}, {12, 33, 54}, {34, 55, 13},
		{56, 14, 35}, {15, 36, 57}, {37, 58, 16}, {59, 17, 38}, {18, 39, 60}, {40, 61, 19}, {62, 20, 41},
	}
	for _, o := range order {
		enc(c[o[0]], c[o[1]], c[o[2]], 4)
	}
	enc(0, 0, c[63], 2)
	return out.String()
}

func repeat(sum []byte, n int) []byte {
	out := make([]byte, 0, n)
	for len(out) < n {
		out = append(out, sum[:min(n-len(out), len(sum))]...)
	}
	return out
}
