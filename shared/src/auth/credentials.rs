//! What an account is made of, parsed once at the boundary: a normalised email, a password
//! that meets the rules, a display name. Each `parse` answers a message that names the field.

use std::fmt;

/// An email address, trimmed and lower-cased.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub const MAX_LEN: usize = 254;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let email = raw.trim().to_lowercase();
        if email.is_empty() {
            return Err("email is required".into());
        }
        if email.chars().count() > Self::MAX_LEN || !looks_like_an_address(&email) {
            return Err("email is not a valid address".into());
        }
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before the `@`.
    pub fn local_part(&self) -> &str {
        self.0.split('@').next().unwrap_or_default()
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `local@domain.tld`: one `@`, a local part of printable characters without spaces or quotes,
/// a domain of at least two dot-separated labels of letters, digits and inner hyphens.
fn looks_like_an_address(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.chars().all(char::is_alphabetic) && tld.len() >= 2);
    local_ok && domain_ok
}

/// A password for a new account: 8–64 characters with at least one letter and one digit.
/// Never printed by `Debug`.
#[derive(Clone)]
pub struct NewPassword(String);

impl NewPassword {
    pub const MIN_LEN: usize = 8;
    pub const MAX_LEN: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() {
            return Err("password is required".into());
        }
        let len = raw.chars().count();
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&len) {
            return Err(format!(
                "password must be {} to {} characters long",
                Self::MIN_LEN,
                Self::MAX_LEN
            ));
        }
        if !raw.chars().any(char::is_alphabetic) || !raw.chars().any(|c| c.is_ascii_digit()) {
            return Err("password must contain at least one letter and one digit".into());
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

impl fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewPassword(***)")
    }
}

/// An account's display name: 1–30 characters after trimming.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountName(String);

impl AccountName {
    pub const MAX_LEN: usize = 30;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let name = raw.trim();
        if name.is_empty() {
            return Err("name must not be empty".into());
        }
        if name.chars().count() > Self::MAX_LEN {
            return Err(format!(
                "name must be at most {} characters long",
                Self::MAX_LEN
            ));
        }
        if name.chars().any(char::is_control) {
            return Err("name must not contain control characters".into());
        }
        Ok(Self(name.to_owned()))
    }

    /// The default name of an account: the email's local part, cut to the maximum length.
    pub fn from_email(email: &Email) -> Self {
        Self(email.local_part().chars().take(Self::MAX_LEN).collect())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        let email = Email::parse("  Ada.Lovelace+x@Example.COM \n").unwrap();
        assert_eq!(email.as_str(), "ada.lovelace+x@example.com");
        assert_eq!(email.local_part(), "ada.lovelace+x");
    }

    #[test]
    fn malformed_emails_are_refused_naming_the_field() {
        for bad in [
            "plain",
            "@example.com",
            "a@",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "a@b..com",
            "a@-b.com",
            "a@b.c",
            ".a@b.com",
            "a..b@c.com",
            "a@b.com.",
            "a\"b@c.com",
            "a@b_c.com",
        ] {
            let err = Email::parse(bad).unwrap_err();
            assert_eq!(err, "email is not a valid address", "{bad}");
        }
        assert_eq!(Email::parse("   ").unwrap_err(), "email is required");
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse(&long).is_err());
    }

    #[test]
    fn ordinary_emails_are_accepted() {
        for good in [
            "a@b.co",
            "first.last@sub.example.org",
            "x_y-z+tag@my-host.io",
            "用户@例子.中国",
        ] {
            assert!(Email::parse(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn passwords_need_8_to_64_characters_a_letter_and_a_digit() {
        assert!(NewPassword::parse("abcdefg1").is_ok());
        assert!(NewPassword::parse(&format!("a1{}", "x".repeat(62))).is_ok());
        assert!(NewPassword::parse("pässwörd9").is_ok());
        assert_eq!(NewPassword::parse("").unwrap_err(), "password is required");
        assert!(NewPassword::parse("abc1").unwrap_err().contains("8 to 64"));
        assert!(
            NewPassword::parse(&format!("a1{}", "x".repeat(63)))
                .unwrap_err()
                .contains("8 to 64")
        );
        assert!(
            NewPassword::parse("abcdefgh")
                .unwrap_err()
                .contains("letter and one digit")
        );
        assert!(
            NewPassword::parse("12345678")
                .unwrap_err()
                .contains("letter and one digit")
        );
    }

    #[test]
    fn a_password_is_not_printed_by_debug() {
        let p = NewPassword::parse("abcdefg1").unwrap();
        assert_eq!(format!("{p:?}"), "NewPassword(***)");
    }

    #[test]
    fn names_are_trimmed_and_1_to_30_characters() {
        assert_eq!(AccountName::parse("  Ada ").unwrap().as_str(), "Ada");
        assert!(AccountName::parse("   ").unwrap_err().contains("empty"));
        assert!(
            AccountName::parse(&"n".repeat(31))
                .unwrap_err()
                .contains("at most 30")
        );
        assert!(AccountName::parse(&"名".repeat(30)).is_ok());
        assert!(AccountName::parse("a\u{0}b").is_err());
    }

    #[test]
    fn the_default_name_is_the_local_part_cut_to_30_characters() {
        let email = Email::parse(&format!("{}@example.com", "b".repeat(40))).unwrap();
        assert_eq!(AccountName::from_email(&email).as_str(), "b".repeat(30));
        let email = Email::parse("ada@example.com").unwrap();
        assert_eq!(AccountName::from_email(&email).as_str(), "ada");
    }
}
