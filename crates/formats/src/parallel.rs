//! Independent work at once, a bounded number at a time: the headers of a model's shards, the
//! requests of a remote model (crates/hub).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Jobs at once. For requests: every shard header of a 30-shard checkpoint in one round trip,
/// a bound on threads and connections for the largest (DeepSeek-V3's 163 shards: 6 waves).
pub const MAX_IN_FLIGHT: usize = 32;

/// `f(0) .. f(n-1)`, at most `limit` running at once, results in order.
pub fn run_bounded<T: Send>(n: usize, limit: usize, f: &(dyn Fn(usize) -> T + Sync)) -> Vec<T> {
    let workers = limit.clamp(1, MAX_IN_FLIGHT).min(n);
    if workers <= 1 {
        return (0..n).map(f).collect();
    }
    let slots: Vec<Mutex<Option<T>>> = (0..n).map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let v = f(i);
                *slots[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(v);
            });
        }
    });
    slots
        .into_iter()
        .map(|s| {
            s.into_inner()
                .unwrap_or_else(|p| p.into_inner())
                .expect("every slot is filled before the scope ends")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_order() {
        let out = run_bounded(20, 4, &|i| i * i);
        assert_eq!(out, (0..20).map(|i| i * i).collect::<Vec<_>>());
        assert!(run_bounded(0, 4, &|i| i).is_empty());
    }
}
