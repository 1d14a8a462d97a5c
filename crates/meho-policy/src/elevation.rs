use std::fmt;

/// Whether a call runs elevated, and as whom.
///
/// `sudo_user = "root"` and "sudo with no user" are the same thing and compare equal, so a waiver
/// learned for one applies to the other and to nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum Elevation {
    /// Runs as the login user.
    #[default]
    None,
    /// Runs through `sudo -n`; `user` is `None` for root.
    Sudo {
        /// The target user, never `root` (that is `None`).
        user: Option<String>,
    },
}

impl Elevation {
    /// Builds an elevation from the CLI/API shape `sudo: bool, sudo_user: Option<&str>`. A sudo user
    /// implies sudo; an empty one is kept, so the decision refuses it as invalid rather than
    /// silently running unelevated.
    pub fn from_request(sudo: bool, sudo_user: Option<&str>) -> Self {
        match sudo_user {
            Some(user) => Elevation::Sudo {
                user: (user != "root").then(|| user.to_owned()),
            },
            None if sudo => Elevation::Sudo { user: None },
            None => Elevation::None,
        }
    }

    /// The prefix the host runs the command under: `sudo -n` or `sudo -n -u USER`.
    pub fn prefix(&self) -> Option<String> {
        match self {
            Elevation::None => None,
            Elevation::Sudo { user: None } => Some("sudo -n".to_owned()),
            Elevation::Sudo { user: Some(user) } => Some(format!("sudo -n -u {user}")),
        }
    }

    /// The user the command runs as under sudo, `root` included.
    pub fn sudo_user(&self) -> Option<&str> {
        match self {
            Elevation::None => None,
            Elevation::Sudo { user } => Some(user.as_deref().unwrap_or("root")),
        }
    }
}

impl fmt::Display for Elevation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.sudo_user() {
            None => f.write_str("none"),
            Some(user) => write!(f, "sudo:{user}"),
        }
    }
}

/// `^[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,31}$`: a user name that can be neither a flag nor a shell word.
pub fn is_valid_sudo_user(user: &str) -> bool {
    let bytes = user.as_bytes();
    match bytes.split_first() {
        Some((first, rest)) => {
            (first.is_ascii_alphanumeric() || *first == b'_')
                && rest.len() <= 31
                && rest
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        }
        None => false,
    }
}
