//! Where a deposit goes: rendezvous (highest random weight) hashing of the deposit id over the
//! candidate holders. Each candidate's weight depends only on the deposit and the candidate,
//! so the choice is stable — a peer coming or going moves only the deposits it would hold —
//! and an owner's deposits spread over the machines.

use crate::identity::PeerId;

/// The candidates, best first for deposit `id`.
pub fn rank(id: &str, candidates: &[PeerId]) -> Vec<PeerId> {
    let mut scored: Vec<([u8; 32], &PeerId)> = candidates
        .iter()
        .map(|p| {
            let mut h = blake3::Hasher::new();
            h.update(b"lanyard-placement-v1");
            h.update(&(id.len() as u64).to_le_bytes());
            h.update(id.as_bytes());
            h.update(p.as_str().as_bytes());
            (*h.finalize().as_bytes(), p)
        })
        .collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.as_str().cmp(b.1.as_str())));
    let mut out: Vec<PeerId> = Vec::with_capacity(scored.len());
    for (_, p) in scored {
        if !out.contains(p) {
            out.push(p.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peers(n: u8) -> Vec<PeerId> {
        (0..n).map(|i| PeerId::from_public_key(&[i; 32])).collect()
    }

    #[test]
    fn the_choice_is_stable_whatever_the_order() {
        let mut p = peers(6);
        let a = rank("d1", &p);
        p.reverse();
        assert_eq!(rank("d1", &p), a);
        assert_eq!(a.len(), 6);
    }

    #[test]
    fn a_peer_leaving_moves_only_what_it_held() {
        let p = peers(8);
        for d in 0..50 {
            let id = format!("deposit{d}");
            let before = rank(&id, &p);
            let gone = &p[3];
            let rest: Vec<PeerId> = p.iter().filter(|x| *x != gone).cloned().collect();
            let after = rank(&id, &rest);
            let kept: Vec<PeerId> = before.into_iter().filter(|x| x != gone).collect();
            assert_eq!(after, kept, "the others keep their order");
        }
    }

    #[test]
    fn deposits_spread_over_the_machines() {
        let p = peers(5);
        let mut first = [0u32; 5];
        for d in 0..500 {
            let top = rank(&format!("d{d}"), &p)[0].clone();
            first[p.iter().position(|x| *x == top).unwrap()] += 1;
        }
        // 100 expected each; a fair hash stays well inside this.
        assert!(first.iter().all(|&n| (50..=150).contains(&n)), "{first:?}");
    }

    #[test]
    fn duplicates_count_once() {
        let p = peers(2);
        let twice = vec![p[0].clone(), p[1].clone(), p[0].clone()];
        assert_eq!(rank("x", &twice).len(), 2);
    }
}
