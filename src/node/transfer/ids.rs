//! Transfer ids: made here, checked when a peer names one, and found from what a person types.

use crate::node::peers::FindError;

/// The one id among `ids` that `spec` is, or starts with (at least 4 characters): what a person
/// types for an offer or a transfer.
pub(crate) fn find_id<'a>(ids: impl Iterator<Item = &'a String>, spec: &str, what: &str, missing: &str) -> Result<String, FindError> {
    let mut matches = Vec::new();
    for id in ids {
        if id == spec {
            return Ok(id.clone());
        }
        if spec.len() >= 4 && id.starts_with(spec) {
            matches.push(id);
        }
    }
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(FindError::Unknown(format!("no {what} {spec:?} {missing}"))),
        _ => Err(FindError::Ambiguous(format!(
            "{spec:?} matches several {what}s; give more of the id"
        ))),
    }
}

pub(super) fn valid_id(s: &str) -> bool {
    s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

pub(super) fn new_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}
