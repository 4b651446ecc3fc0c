//! Encryption with age: a passphrase (age's scrypt recipient) or X25519 recipients. The
//! stored files are standard age files, so the stock `age` CLI decrypts them.

use std::io::{Read, Write};
use std::str::FromStr;

use age::secrecy::SecretString;

use crate::manifest::RecipientInfo;

/// scrypt's cost for passphrase backups: log2 of N (64 MiB of memory).
pub const SCRYPT_LOG_N: u8 = 16;
/// The highest scrypt cost a backup may ask of its reader (1 GiB of memory), above what
/// tend writes and what the age CLI picks. age would otherwise time this machine and refuse
/// a cost it guesses to be slow, so a restore on a busy server failed ("excessive work
/// parameter") for a backup tend itself wrote.
const SCRYPT_MAX_LOG_N: u8 = 20;

/// How backups are encrypted.
#[derive(Clone)]
pub enum Encryption {
    /// `BACKUP_ENCRYPTION_KEY`: a passphrase, through age's scrypt recipient.
    Passphrase(SecretString),
    /// age X25519 public keys (`age1...`).
    Recipients(Vec<age::x25519::Recipient>),
}

impl std::fmt::Debug for Encryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Encryption::Passphrase(_) => f.write_str("Encryption::Passphrase(********)"),
            Encryption::Recipients(r) => write!(f, "Encryption::Recipients({})", r.len()),
        }
    }
}

/// How backups are decrypted.
#[derive(Clone)]
pub enum Decryption {
    Passphrase(SecretString),
    /// age X25519 identities (`AGE-SECRET-KEY-1...`).
    Identities(Vec<age::x25519::Identity>),
}

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// Shown through [`shown_recipient`].
    #[error("`{0}` is not an age recipient (it should start with age1)")]
    BadRecipient(String),
    #[error("the age identity is not valid (it should start with AGE-SECRET-KEY-1)")]
    BadIdentity,
    #[error("cannot set up encryption: {0}")]
    Setup(String),
}

/// A recipient that did not parse, as an error may show it: a secret key pasted by mistake
/// (`AGE-SECRET-KEY-1...`) is never shown, nor anything longer than a public key.
pub fn shown_recipient(text: &str) -> String {
    let text = text.trim();
    if text.to_ascii_uppercase().starts_with("AGE-SECRET-KEY") {
        return "an age secret key (AGE-SECRET-KEY-1..., not shown; give its public key, age1...)"
            .to_string();
    }
    if text.chars().count() > 70 {
        return format!("{}...", text.chars().take(12).collect::<String>());
    }
    text.to_string()
}

impl Encryption {
    pub fn recipients_from(list: &[String]) -> Result<Encryption, CryptoError> {
        let recipients = list
            .iter()
            .map(|r| {
                age::x25519::Recipient::from_str(r.trim())
                    .map_err(|_| CryptoError::BadRecipient(shown_recipient(r)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Encryption::Recipients(recipients))
    }

    /// What the manifest says about the recipients: public facts only.
    pub fn describe(&self) -> Vec<RecipientInfo> {
        match self {
            Encryption::Passphrase(_) => vec![RecipientInfo {
                kind: "scrypt".to_string(),
                public_key: None,
            }],
            Encryption::Recipients(list) => list
                .iter()
                .map(|r| RecipientInfo {
                    kind: "x25519".to_string(),
                    public_key: Some(r.to_string()),
                })
                .collect(),
        }
    }

    /// Wraps a writer so what is written to it is encrypted. Call `finish` on the result.
    pub fn wrap<W: Write>(&self, output: W) -> Result<age::stream::StreamWriter<W>, CryptoError> {
        let encryptor = match self {
            Encryption::Passphrase(pass) => {
                // age times the machine to pick scrypt's cost, which here varied from
                // 2^18 to 2^20 (up to 1 GiB of memory, for the backup and again for every
                // restore, and a restore on a slower machine may refuse it). A fixed 2^16
                // costs 64 MiB and a fraction of a second, and stays within what any
                // machine accepts; a long passphrase is what makes it strong.
                let mut recipient = age::scrypt::Recipient::new(pass.clone());
                recipient.set_work_factor(SCRYPT_LOG_N);
                age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
                    .map_err(|e| CryptoError::Setup(e.to_string()))?
            }
            Encryption::Recipients(list) => {
                age::Encryptor::with_recipients(list.iter().map(|r| r as &dyn age::Recipient))
                    .map_err(|e| CryptoError::Setup(e.to_string()))?
            }
        };
        encryptor
            .wrap_output(output)
            .map_err(|e| CryptoError::Setup(e.to_string()))
    }
}

impl Decryption {
    pub fn identities_from(text: &str) -> Result<Decryption, CryptoError> {
        let identities = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| age::x25519::Identity::from_str(l).map_err(|_| CryptoError::BadIdentity))
            .collect::<Result<Vec<_>, _>>()?;
        if identities.is_empty() {
            return Err(CryptoError::BadIdentity);
        }
        Ok(Decryption::Identities(identities))
    }

    /// Opens an age stream. The error says which: the key does not open it, the header is
    /// not age's (or fails its authentication), or the bytes could not be read.
    pub fn open<R: Read>(&self, input: R) -> Result<age::stream::StreamReader<R>, OpenError> {
        let decryptor = age::Decryptor::new(input).map_err(OpenError::from)?;
        let result = match self {
            Decryption::Passphrase(pass) => {
                let mut identity = age::scrypt::Identity::new(pass.clone());
                identity.set_max_work_factor(SCRYPT_MAX_LOG_N);
                decryptor.decrypt(std::iter::once(&identity as &dyn age::Identity))
            }
            Decryption::Identities(list) => {
                decryptor.decrypt(list.iter().map(|i| i as &dyn age::Identity))
            }
        };
        result.map_err(OpenError::from)
    }

    /// What kind of key this is, for messages.
    pub fn describe(&self) -> &'static str {
        match self {
            Decryption::Passphrase(_) => "the passphrase in BACKUP_ENCRYPTION_KEY",
            Decryption::Identities(_) => "the age identity file BACKUP_AGE_IDENTITY_FILE",
        }
    }
}

/// Why an age stream did not open.
#[derive(Debug)]
pub enum OpenError {
    /// No configured key unwraps the file key (a wrong passphrase or identity). Only a
    /// wrong key when the stored bytes are the ones the manifest describes, which the
    /// reader checks before it believes this.
    WrongKey,
    /// The header is not age's, or its MAC fails: the bytes are damaged.
    Damaged(String),
    /// scrypt's work factor is beyond what this machine accepts.
    Excessive(String),
    /// Reading the bytes failed (the store, or a layer below).
    Io(std::io::Error),
}

impl From<age::DecryptError> for OpenError {
    fn from(err: age::DecryptError) -> OpenError {
        match err {
            age::DecryptError::NoMatchingKeys
            | age::DecryptError::DecryptionFailed
            | age::DecryptError::KeyDecryptionFailed => OpenError::WrongKey,
            age::DecryptError::Io(e) => OpenError::Io(e),
            e @ age::DecryptError::ExcessiveWork { .. } => OpenError::Excessive(e.to_string()),
            age::DecryptError::InvalidHeader | age::DecryptError::UnknownFormat => {
                OpenError::Damaged(
                    "the stored data is not an age file (it is corrupt, or not a tend backup)"
                        .to_string(),
                )
            }
            other => OpenError::Damaged(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_key_given_as_a_recipient_is_never_shown() {
        let secret = "AGE-SECRET-KEY-1QQPQZRFR7ZZPQ9UAJA4SS0J0QQYNQCJMZEQX9VKXHKVQ0SQLK5DSSXHQ2Z";
        let shown = shown_recipient(secret);
        assert!(!shown.contains("QQPQZRFR"), "{shown}");
        let err = Encryption::recipients_from(&[format!(" {secret} ")]).unwrap_err();
        assert!(!err.to_string().contains("QQPQZRFR"), "{err}");
        assert!(!shown_recipient(&"x".repeat(500)).contains(&"x".repeat(20)));
        assert_eq!(shown_recipient(" age1oops "), "age1oops");
    }
}
