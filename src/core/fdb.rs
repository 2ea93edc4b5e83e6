//! The forwarding database of one network: which MAC lives where.
//!
//! Lookups and refreshes run on every frame from several data-path workers at once, so the table
//! is a [`DashMap`] (sharded `RwLock`s): a lookup or a refresh of a known MAC takes a shard read
//! lock, and the last-seen time is an atomic. Only a *new* MAC, a move, eviction and ageing take
//! the table's one mutex, which guards an expiry heap. That heap makes eviction exact ("the entry
//! that expires soonest") and ageing proportional to what expires, not to the table size: it
//! holds one item per entry, keyed by the expiry the entry had when the item was pushed; a
//! refresh does not touch it, so when an item comes up whose entry has been refreshed since, it
//! is pushed again with the new expiry. Every item's key is at most its entry's real expiry, so
//! the first popped item whose key *is* the real expiry is the true minimum.
//!
//! **Static entries** ([`Fdb::pin`]) are the cluster's endpoint advertisements: a MAC another
//! host says it has. They never age and are never evicted (they have no heap item), and
//! learning from a VTEP does not move them ([`Learned::Refused`]): only the advertisement's
//! removal ([`Fdb::unpin`]) or a frame from a local port (a container that moved to this host:
//! a local port is the authority on what lives here) does. They do not count against the
//! capacity, which bounds what the data plane can make the table learn; how many there are is
//! up to the cluster's advertisements (at most one per address of the network).
//!
//! **The hasher.** Keys come from the network: anyone on the overlay picks the source MACs the
//! table learns. An unkeyed hash (FxHash and the like) would let them choose MACs that all fall
//! into one bucket and turn every lookup into a long probe, a denial of service. So the table
//! is keyed: [`foldhash`] seeded at random per table (`MacHasher`), cheaper than std's SipHash
//! on a short key. foldhash claims only "minimal" flooding resistance
//! (against an attacker who cannot learn the seed); here that attacker sees neither hash values
//! nor the table's order (listings are sorted by MAC), and the table holds at most `capacity`
//! learned entries, so at worst a flood costs bounded probes, never unbounded growth.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use dashmap::mapref::entry::Entry as MapEntry;
use dashmap::DashMap;
use foldhash::fast::RandomState as MacHasher;

use super::time::{duration_millis, Timestamp};
use crate::wire::Mac;

/// A local port of the switch (a TAP in some container).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct PortId(pub u32);

/// A remote VXLAN tunnel endpoint: the address its switch listens on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Vtep(pub SocketAddr);

/// Where a MAC lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Location {
    Port(PortId),
    Vtep(Vtep),
}

/// Limits of one network's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdbConfig {
    /// An entry not refreshed for this long is forgotten.
    pub ageing: Duration,
    /// The most learned entries the table holds (static ones apart); a new MAC beyond it evicts
    /// the soonest-expiring learned entry.
    pub capacity: usize,
}

impl Default for FdbConfig {
    fn default() -> FdbConfig {
        FdbConfig {
            ageing: Duration::from_secs(300),
            capacity: 65_536,
        }
    }
}

/// What [`Fdb::learn`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Learned {
    /// The MAC was known at this location; its timer restarted.
    Refreshed,
    /// A new entry.
    New,
    /// A new entry, and another was evicted to make room.
    NewEvicted,
    /// The MAC was known elsewhere and moved here.
    Moved,
    /// The MAC lives at a local port (a fresh entry there), or is pinned at a VTEP by an
    /// advertisement and the frame came from another VTEP, and was not moved here: a MAC is
    /// not taken from a live local port, nor from an advertised place, by one frame from
    /// somewhere else.
    Refused,
}

/// Counters of table events.
#[derive(Debug, Default)]
pub struct FdbCounters {
    pub learned: AtomicU64,
    pub moved: AtomicU64,
    pub evicted: AtomicU64,
    pub aged: AtomicU64,
}

#[derive(Debug)]
struct Entry {
    location: Location,
    last_seen: AtomicU64,
    /// Tells heap items of this entry from those of an earlier entry for the same MAC.
    generation: u64,
    /// A static entry (see the module doc): no heap item, never ages.
    pinned: bool,
}

#[derive(Debug, Default)]
struct Expiry {
    heap: BinaryHeap<Reverse<(u64, Mac, u64)>>,
    next_generation: u64,
    /// How many entries are static (changed only under this lock).
    pinned: usize,
}

/// One row of a table listing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdbEntry {
    pub mac: Mac,
    pub location: Location,
    pub last_seen: Timestamp,
    /// A static entry, from an advertisement: it does not age.
    pub pinned: bool,
}

/// The MAC table of one network.
#[derive(Debug)]
pub struct Fdb {
    map: DashMap<Mac, Entry, MacHasher>,
    expiry: Mutex<Expiry>,
    ageing_ms: u64,
    capacity: usize,
    pub counters: FdbCounters,
}

impl Fdb {
    pub fn new(config: FdbConfig) -> Fdb {
        Fdb {
            map: DashMap::with_hasher(MacHasher::default()),
            expiry: Mutex::new(Expiry::default()),
            ageing_ms: duration_millis(config.ageing).max(1),
            capacity: config.capacity.max(1),
            counters: FdbCounters::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Records that `mac` was seen at `location`. The caller has checked that `mac` is a valid
    /// source address (see [`Mac::is_valid_source`]).
    pub fn learn(&self, mac: Mac, location: Location, now: Timestamp) -> Learned {
        // Fast path: a known MAC at the same place only restarts its timer.
        if let Some(entry) = self.map.get(&mac) {
            if entry.location == location {
                if entry.last_seen.load(Ordering::Relaxed) != now.0 {
                    entry.last_seen.store(now.0, Ordering::Relaxed);
                }
                return Learned::Refreshed;
            }
        }
        let mut expiry = self.lock_expiry();
        let takeover = match self.map.get_mut(&mac) {
            None => false,
            Some(mut entry) => {
                let fresh = now.0
                    < entry
                        .last_seen
                        .load(Ordering::Relaxed)
                        .saturating_add(self.ageing_ms);
                if entry.location == location {
                    entry.last_seen.store(now.0, Ordering::Relaxed);
                    return Learned::Refreshed;
                }
                if (fresh && matches!(entry.location, Location::Port(_)))
                    || (entry.pinned && matches!(location, Location::Vtep(_)))
                {
                    return Learned::Refused;
                }
                if !entry.pinned {
                    entry.location = location;
                    entry.last_seen.store(now.0, Ordering::Relaxed);
                    self.counters.moved.fetch_add(1, Ordering::Relaxed);
                    return Learned::Moved;
                }
                true
            }
        };
        if takeover {
            // A local port takes a static entry over (the container moved here): it becomes a
            // learned entry, so a table full of learned entries makes room first. The entry's
            // guard is dropped meanwhile (eviction may touch its shard); the expiry lock keeps
            // anyone else from changing the table's shape.
            if self.map.len() - expiry.pinned >= self.capacity {
                self.evict_one(&mut expiry);
            }
            if let Some(mut entry) = self.map.get_mut(&mac) {
                entry.location = location;
                entry.last_seen.store(now.0, Ordering::Relaxed);
                entry.pinned = false;
                expiry.pinned -= 1;
                expiry.next_generation += 1;
                entry.generation = expiry.next_generation;
                expiry.heap.push(Reverse((
                    now.0.saturating_add(self.ageing_ms),
                    mac,
                    entry.generation,
                )));
            }
            self.counters.moved.fetch_add(1, Ordering::Relaxed);
            return Learned::Moved;
        }
        let mut outcome = Learned::New;
        if self.map.len() - expiry.pinned >= self.capacity {
            self.evict_one(&mut expiry);
            outcome = Learned::NewEvicted;
        }
        expiry.next_generation += 1;
        let generation = expiry.next_generation;
        if let MapEntry::Vacant(v) = self.map.entry(mac) {
            v.insert(Entry {
                location,
                last_seen: AtomicU64::new(now.0),
                generation,
                pinned: false,
            });
        }
        expiry.heap.push(Reverse((
            now.0.saturating_add(self.ageing_ms),
            mac,
            generation,
        )));
        self.counters.learned.fetch_add(1, Ordering::Relaxed);
        outcome
    }

    /// Where `mac` lives, unless unknown or expired.
    pub fn lookup(&self, mac: Mac, now: Timestamp) -> Option<Location> {
        let entry = self.map.get(&mac)?;
        let last = entry.last_seen.load(Ordering::Relaxed);
        (entry.pinned || now.0 < last.saturating_add(self.ageing_ms)).then_some(entry.location)
    }

    /// Makes `mac` a static entry at `vtep` (an advertisement): it replaces the entry the MAC
    /// had, never ages and is never evicted. A MAC that lives at a live local port (a fresh
    /// entry there) is not taken from it: `false`, and the table is unchanged.
    pub fn pin(&self, mac: Mac, vtep: Vtep, now: Timestamp) -> bool {
        let mut expiry = self.lock_expiry();
        let location = Location::Vtep(vtep);
        if let Some(mut entry) = self.map.get_mut(&mac) {
            let fresh = now.0
                < entry
                    .last_seen
                    .load(Ordering::Relaxed)
                    .saturating_add(self.ageing_ms);
            if entry.pinned && entry.location == location {
                return true;
            }
            if fresh && matches!(entry.location, Location::Port(_)) {
                return false;
            }
            entry.location = location;
            if !entry.pinned {
                expiry.pinned += 1;
            }
            entry.pinned = true;
            entry.last_seen.store(now.0, Ordering::Relaxed);
            // Its heap item, if any, is stale from now on.
            expiry.next_generation += 1;
            entry.generation = expiry.next_generation;
            return true;
        }
        expiry.next_generation += 1;
        expiry.pinned += 1;
        let generation = expiry.next_generation;
        self.map.insert(
            mac,
            Entry {
                location,
                last_seen: AtomicU64::new(now.0),
                generation,
                pinned: true,
            },
        );
        true
    }

    /// Removes the static entry of `mac` at `vtep` (its advertisement went). An entry that is
    /// not static there (learned since, or pinned elsewhere) stays. Returns whether one went.
    pub fn unpin(&self, mac: Mac, vtep: Vtep) -> bool {
        let mut expiry = self.lock_expiry();
        let gone = self
            .map
            .remove_if(&mac, |_, e| e.pinned && e.location == Location::Vtep(vtep))
            .is_some();
        if gone {
            expiry.pinned -= 1;
        }
        gone
    }

    /// How many entries are static.
    pub fn pinned(&self) -> usize {
        self.lock_expiry().pinned
    }

    /// Forgets every entry that has expired by `now`; returns how many.
    pub fn age(&self, now: Timestamp) -> usize {
        let mut expiry = self.lock_expiry();
        let mut aged = 0;
        while let Some(&Reverse((due, mac, generation))) = expiry.heap.peek() {
            if due > now.0 {
                break;
            }
            expiry.heap.pop();
            match self.current_expiry(mac, generation) {
                None => {} // stale item: the entry was removed or replaced
                Some(real) if real <= now.0 => {
                    self.map.remove(&mac);
                    aged += 1;
                }
                Some(real) => expiry.heap.push(Reverse((real, mac, generation))),
            }
        }
        self.counters.aged.fetch_add(aged as u64, Ordering::Relaxed);
        aged
    }

    /// Removes every entry at `location` (a port detached, a peer removed).
    pub fn flush(&self, location: Location) -> usize {
        let mut expiry = self.lock_expiry();
        let before = self.map.len();
        let mut pinned = 0;
        self.map.retain(|_, e| {
            let keep = e.location != location;
            pinned += usize::from(!keep && e.pinned);
            keep
        });
        expiry.pinned -= pinned;
        before - self.map.len()
    }

    /// A snapshot of the table, for listings.
    pub fn entries(&self) -> Vec<FdbEntry> {
        let mut v: Vec<FdbEntry> = self
            .map
            .iter()
            .map(|e| FdbEntry {
                mac: *e.key(),
                location: e.location,
                last_seen: Timestamp(e.last_seen.load(Ordering::Relaxed)),
                pinned: e.pinned,
            })
            .collect();
        v.sort_by_key(|e| e.mac);
        v
    }

    fn evict_one(&self, expiry: &mut Expiry) {
        while let Some(Reverse((due, mac, generation))) = expiry.heap.pop() {
            match self.current_expiry(mac, generation) {
                None => {}
                Some(real) if real == due => {
                    self.map.remove(&mac);
                    self.counters.evicted.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Some(real) => expiry.heap.push(Reverse((real, mac, generation))),
            }
        }
    }

    /// The real expiry of the entry a heap item belongs to, or `None` for a stale item.
    fn current_expiry(&self, mac: Mac, generation: u64) -> Option<u64> {
        let entry = self.map.get(&mac)?;
        (entry.generation == generation && !entry.pinned).then(|| {
            entry
                .last_seen
                .load(Ordering::Relaxed)
                .saturating_add(self.ageing_ms)
        })
    }

    fn lock_expiry(&self) -> std::sync::MutexGuard<'_, Expiry> {
        // A poisoned lock only means another thread panicked mid-update; the heap is still a
        // valid heap (stale items are tolerated by design), so carry on.
        self.expiry.lock().unwrap_or_else(|p| p.into_inner())
    }
}
