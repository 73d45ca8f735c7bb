package safefile

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
)

// CertPool reads a PEM bundle of CA certificates (a tls.ca_file) and
// refuses one that holds no certificate: an empty pool would make every
// handshake fail later with a less helpful message.
func CertPool(path string) (*x509.CertPool, error) {
	pem, err := ReadFile(path, MaxPEM, "tls.ca_file")
	if err != nil {
		return nil, fmt.Errorf("reading tls.ca_file: %w (point it at a PEM file of CA certificates)", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls.ca_file %s holds no PEM certificate; point it at a file of \"-----BEGIN CERTIFICATE-----\" blocks", path)
	}
	return pool, nil
}

// KeyPair reads a client certificate and its key (tls.cert_file and
// tls.key_file), as tls.LoadX509KeyPair does, through ReadFile.
func KeyPair(certFile, keyFile string) (tls.Certificate, error) {
	cert, err := ReadFile(certFile, MaxPEM, "tls.cert_file")
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("reading tls.cert_file: %w", err)
	}
	key, err := ReadFile(keyFile, MaxPEM, "tls.key_file")
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("reading tls.key_file: %w", err)
	}
	pair, err := tls.X509KeyPair(cert, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tls.cert_file %s and tls.key_file %s: %w (both PEM, the key matching the certificate)", certFile, keyFile, err)
	}
	return pair, nil
}
