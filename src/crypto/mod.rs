//! Cryptography for forge, kept apart from HTTP and storage so each
//! primitive is chosen and reviewed in one place: argon2id password hashing
//! on a bounded pool ([`password`]; the policy on which passwords are
//! acceptable is [`crate::domain::password_policy`]), JWT signing and
//! strict verification with a rotating keyring and its JWKS ([`jwt`]), and
//! random opaque tokens, codes and their stored hashes ([`tokens`]). Nothing
//! here logs or returns a secret; callers get typed results and errors that
//! are safe to log.

pub mod jwt;
pub mod password;
pub mod tokens;
