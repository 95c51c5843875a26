//! The gear table of the rolling hash.

/// 256 pseudo-random 64-bit values, one per byte value: the successive outputs of splitmix64
/// (Steele, Lea and Flood, "Fast splittable pseudorandom number generators", 2014) seeded with
/// 0x6361_6972_6e00_0001 (the ASCII bytes of "cairn", then 0x000001). Computed at compile time
/// so that the constant's origin is the code itself; `golden_gear_table` pins its values.
pub static GEAR: [u64; 256] = build();

/// `GEAR[i] << 1`, for rolling two bytes per step.
pub(crate) static GEAR_LS: [u64; 256] = shifted();

const fn splitmix64(state: u64) -> (u64, u64) {
    let state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (state, z ^ (z >> 31))
}

const fn build() -> [u64; 256] {
    let mut table = [0u64; 256];
    let mut state = 0x6361_6972_6e00_0001u64;
    let mut i = 0;
    while i < 256 {
        let (next, value) = splitmix64(state);
        state = next;
        table[i] = value;
        i += 1;
    }
    table
}

const fn shifted() -> [u64; 256] {
    let gear = build();
    let mut table = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = gear[i] << 1;
        i += 1;
    }
    table
}
