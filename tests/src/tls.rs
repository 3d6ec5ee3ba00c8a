//! A fleet's own certificate authority for HTTPS on 127.0.0.1: a CA, and a
//! server certificate it signed for `localhost` and `127.0.0.1`, as PEM
//! files in a temporary folder (what an operator would be given).

use outpost_registry::tls::{ClientTls, ServerTls};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use std::path::{Path, PathBuf};

pub struct TestCa {
    pub dir: tempfile::TempDir,
    pub ca_pem: String,
}

impl TestCa {
    /// A CA named `name`, and a server certificate it signed.
    pub fn new(name: &str) -> TestCa {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, name);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key"))
            .expect("CA certificate");
        let server_params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("server params");
        let server_key = KeyPair::generate().expect("server key");
        let server = server_params
            .signed_by(&server_key, &ca)
            .expect("server certificate");
        let ca_pem = ca.pem();
        std::fs::write(dir.path().join("ca.pem"), &ca_pem).expect("write CA");
        std::fs::write(dir.path().join("server.pem"), server.pem()).expect("write certificate");
        std::fs::write(dir.path().join("server.key"), server_key.serialize_pem())
            .expect("write key");
        TestCa { dir, ca_pem }
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    pub fn certificate_file(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    pub fn key_file(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }

    pub fn server(&self) -> ServerTls {
        ServerTls::from_files(&self.certificate_file(), &self.key_file()).expect("server TLS")
    }

    /// A client that trusts this CA (and the system's roots).
    pub fn client(&self) -> ClientTls {
        ClientTls::with_ca(self.ca_pem.as_bytes(), &path_text(&self.ca_file())).expect("client TLS")
    }
}

fn path_text(path: &Path) -> String {
    path.display().to_string()
}
