#!/bin/sh
# Makes a development CA and the certificates of the Temporal mTLS setup in docker-compose.yml:
#   ca/      the CA (ca.pem, ca-key.pem): kept here, mounted nowhere
#   server/  the Temporal server: frontend.pem (names "temporal", "localhost", 127.0.0.1) and internode.pem
#            ("temporal-internode"), each with its key, and the CA; mounted into the `temporal` service
#   client/  the platform's client certificate (API, workers, the setup job), its key and the CA
#   ui/      the Temporal UI's client certificate, its key and the CA
# Every key stays on this machine: deploy/tls/.gitignore keeps keys and certificates out of git. For anything
# but a laptop, issue these from your own CA instead and put them in the same places.
# Usage: deploy/tls/make-dev-certs.sh [DIR] [DAYS]   (DIR defaults to this script's folder, DAYS to 365)
set -eu
dir=${1:-$(dirname "$0")}
days=${2:-365}
umask 077
mkdir -p "$dir/ca" "$dir/server" "$dir/client" "$dir/ui"

# key FILE: a new P-256 private key.
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# leaf NAME FOLDER SUBJECT-ALT-NAMES: a certificate signed by the CA, good for TLS servers and clients both
# (the frontend presents its own certificate when the server's internal services call it).
leaf() {
  key "$dir/$2/$1-key.pem"
  openssl req -new -key "$dir/$2/$1-key.pem" -subj "/O=Sidewalk Delivery (dev)/CN=$1" -out "$dir/$2/$1.csr"
  printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n%s\n%s\n' \
    "extendedKeyUsage=serverAuth,clientAuth" "subjectAltName=$3" > "$dir/$2/$1.ext"
  openssl x509 -req -in "$dir/$2/$1.csr" -CA "$dir/ca/ca.pem" -CAkey "$dir/ca/ca-key.pem" -CAcreateserial \
    -days "$days" -sha256 -extfile "$dir/$2/$1.ext" -out "$dir/$2/$1.pem" 2>/dev/null
  rm -f "$dir/$2/$1.csr" "$dir/$2/$1.ext"
  cp "$dir/ca/ca.pem" "$dir/$2/ca.pem"
}

if [ ! -f "$dir/ca/ca.pem" ]; then
  key "$dir/ca/ca-key.pem"
  openssl req -x509 -new -key "$dir/ca/ca-key.pem" -sha256 -days "$days" \
    -subj "/O=Sidewalk Delivery (dev)/CN=Temporal dev CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$dir/ca/ca.pem"
fi
leaf frontend server "DNS:temporal,DNS:localhost,IP:127.0.0.1"
leaf internode server "DNS:temporal-internode"
leaf client client "DNS:delivery-platform"
leaf ui ui "DNS:temporal-ui"
# The containers run as users of their own, so they must be able to read what is mounted: on a laptop only.
chmod 755 "$dir/server" "$dir/client" "$dir/ui"
chmod 644 "$dir"/server/*.pem "$dir"/client/*.pem "$dir"/ui/*.pem
echo "certificates in $dir: server/, client/, ui/ (CA in ca/, mounted nowhere)"
