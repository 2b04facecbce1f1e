//! Geohash math for the geo commands: a port of Redis 7.0.15's `geohash.c` and
//! `geohash_helper.c` (as the reference binary ships them, with the equal-longitude distance
//! shortcut and the latitude-first box test), operation for operation, so scores, decoded
//! coordinates, distances and the cells a search visits are bit-identical to Redis's.
//!
//! A position is stored in a sorted set as a 52-bit score: 26 bits of longitude and 26 bits of
//! latitude, interleaved (longitude in the odd bits). Latitudes are limited to the Web
//! Mercator range (±85.05112878) because that is what Redis indexes; GEOHASH re-encodes with
//! the standard ±90 range to print standard geohash strings. A search covers its shape with a
//! cell of an estimated precision plus its eight neighbours, drops the neighbours the shape
//! cannot reach, and tests each candidate exactly (haversine on Redis's earth radius).
//!
//! Where C relies on unsigned wrap-around or on x86-64's float-to-integer conversion of out-of-
//! range values (a score that did not come from GEOADD), the port does the same on purpose:
//! GEOPOS of such a member answers what Redis answers.

/// The precision of a stored position: 26 bits per coordinate.
pub const STEP_MAX: u8 = 26;
pub const LONGITUDE_MIN: f64 = -180.0;
pub const LONGITUDE_MAX: f64 = 180.0;
/// Web Mercator's latitude limits (EPSG:900913), which Redis indexes instead of ±90.
pub const LATITUDE_MIN: f64 = -85.05112878;
pub const LATITUDE_MAX: f64 = 85.05112878;
/// Redis's earth radius (the quadratic mean radius of WGS-84).
pub const EARTH_RADIUS_METERS: f64 = 6372797.560856;
/// Half the equator in Web Mercator meters: the radius at which one cell covers the world.
const MERCATOR_MAX_METERS: f64 = 20037726.37;
/// C's `M_PI / 180.0`.
const DEGREES_TO_RADIANS: f64 = std::f64::consts::PI / 180.0;
/// The alphabet of geohash strings.
const BASE32: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
/// Length of a GEOHASH string (the last character is always `0`: only 52 bits exist).
pub const GEOHASH_STRING_BYTES: usize = 11;

const _: () = assert!(STEP_MAX as u32 * 2 == 52 && STEP_MAX <= 32);
const _: () = assert!(GEOHASH_STRING_BYTES * 5 >= 52);

/// A cell: its interleaved bits at `step` bits of precision per coordinate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HashBits {
    pub bits: u64,
    pub step: u8,
}

impl HashBits {
    /// A neighbour the search excluded (Redis's `GZERO`).
    pub const ZERO: HashBits = HashBits { bits: 0, step: 0 };

    /// Redis's `HASHISZERO`.
    pub fn is_zero(&self) -> bool {
        self.bits == 0 && self.step == 0
    }

    /// The score range `[min, max)` of the 52-bit positions inside this cell (Redis's
    /// `scoresOfGeoHashBox`).
    pub fn score_range(&self) -> (u64, u64) {
        let min = align_52_bits(*self);
        let next = HashBits {
            bits: self.bits.wrapping_add(1),
            step: self.step,
        };
        (min, align_52_bits(next))
    }
}

/// An interval of degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    pub min: f64,
    pub max: f64,
}

impl Range {
    fn is_zero(&self) -> bool {
        self.min == 0.0 && self.max == 0.0
    }
}

/// The longitude range of every encoding.
pub const LONGITUDE_RANGE: Range = Range {
    min: LONGITUDE_MIN,
    max: LONGITUDE_MAX,
};
/// The latitude range of stored positions.
pub const LATITUDE_RANGE: Range = Range {
    min: LATITUDE_MIN,
    max: LATITUDE_MAX,
};
/// The latitude range of standard geohash strings (GEOHASH).
pub const STANDARD_LATITUDE_RANGE: Range = Range {
    min: -90.0,
    max: 90.0,
};

/// The bounds of a cell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Area {
    pub hash: HashBits,
    pub longitude: Range,
    pub latitude: Range,
}

/// The eight cells around one, at the same step.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Neighbors {
    pub north: HashBits,
    pub east: HashBits,
    pub west: HashBits,
    pub south: HashBits,
    pub north_east: HashBits,
    pub south_east: HashBits,
    pub north_west: HashBits,
    pub south_west: HashBits,
}

/// The cells a search visits: the centre cell and its (possibly excluded) neighbours.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchArea {
    pub hash: HashBits,
    pub neighbors: Neighbors,
    pub area: Area,
}

impl SearchArea {
    /// The cells in Redis's visiting order: centre, N, S, E, W, NE, NW, SE, SW.
    pub fn cells(&self) -> [HashBits; 9] {
        let n = &self.neighbors;
        [
            self.hash,
            n.north,
            n.south,
            n.east,
            n.west,
            n.north_east,
            n.north_west,
            n.south_east,
            n.south_west,
        ]
    }
}

/// The search shape's extent, in its unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Extent {
    /// BYRADIUS and GEORADIUS.
    Radius(f64),
    /// BYBOX: an axis-aligned box around the centre.
    Box { width: f64, height: f64 },
}

/// A search shape (Redis's `GeoShape`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    /// Longitude, latitude.
    pub center: [f64; 2],
    /// Meters per unit of the extent.
    pub conversion: f64,
    pub extent: Extent,
}

fn degrees_to_radians(degrees: f64) -> f64 {
    degrees * DEGREES_TO_RADIANS
}

fn radians_to_degrees(radians: f64) -> f64 {
    radians / DEGREES_TO_RADIANS
}

/// Spreads the low 32 bits of `x` into the even bits and of `y` into the odd bits.
fn interleave64(x: u32, y: u32) -> u64 {
    const B: [u64; 5] = [
        0x5555555555555555,
        0x3333333333333333,
        0x0F0F0F0F0F0F0F0F,
        0x00FF00FF00FF00FF,
        0x0000FFFF0000FFFF,
    ];
    const S: [u32; 5] = [1, 2, 4, 8, 16];
    let mut x = u64::from(x);
    let mut y = u64::from(y);
    for level in (0..5).rev() {
        x = (x | (x << S[level])) & B[level];
        y = (y | (y << S[level])) & B[level];
    }
    x | (y << 1)
}

/// The inverse of [`interleave64`]: even bits in the low half, odd bits in the high half.
fn deinterleave64(interleaved: u64) -> u64 {
    const B: [u64; 6] = [
        0x5555555555555555,
        0x3333333333333333,
        0x0F0F0F0F0F0F0F0F,
        0x00FF00FF00FF00FF,
        0x0000FFFF0000FFFF,
        0x00000000FFFFFFFF,
    ];
    const S: [u32; 6] = [0, 1, 2, 4, 8, 16];
    let mut x = interleaved;
    let mut y = interleaved >> 1;
    for level in 0..6 {
        x = (x | (x >> S[level])) & B[level];
        y = (y | (y >> S[level])) & B[level];
    }
    x | (y << 32)
}

/// Redis's `geohashEncode`: None outside the indexable coordinates or the given ranges.
pub fn encode(
    long_range: Range,
    lat_range: Range,
    longitude: f64,
    latitude: f64,
    step: u8,
) -> Option<HashBits> {
    if step > 32 || step == 0 || lat_range.is_zero() || long_range.is_zero() {
        return None;
    }
    if !(LONGITUDE_MIN..=LONGITUDE_MAX).contains(&longitude)
        || !(LATITUDE_MIN..=LATITUDE_MAX).contains(&latitude)
    {
        return None;
    }
    if latitude < lat_range.min
        || latitude > lat_range.max
        || longitude < long_range.min
        || longitude > long_range.max
    {
        return None;
    }
    let cells = (1u64 << step) as f64;
    let lat_offset = (latitude - lat_range.min) / (lat_range.max - lat_range.min) * cells;
    let long_offset = (longitude - long_range.min) / (long_range.max - long_range.min) * cells;
    // C converts the offsets to uint32_t by truncation; an offset of exactly 2^step (the
    // range's maximum) stays and spills past the step's bits, as in Redis.
    Some(HashBits {
        bits: interleave64(lat_offset as u32, long_offset as u32),
        step,
    })
}

/// The stored encoding of a position (Redis's `geohashEncodeWGS84`).
pub fn encode_wgs84(longitude: f64, latitude: f64, step: u8) -> Option<HashBits> {
    encode(LONGITUDE_RANGE, LATITUDE_RANGE, longitude, latitude, step)
}

/// Redis's `geohashDecode`: the cell's bounds.
pub fn decode(long_range: Range, lat_range: Range, hash: HashBits) -> Option<Area> {
    if hash.is_zero() || lat_range.is_zero() || long_range.is_zero() {
        return None;
    }
    let step = hash.step;
    debug_assert!(step <= 32, "a cell has at most 32 bits per coordinate");
    let separated = deinterleave64(hash.bits);
    let lat_scale = lat_range.max - lat_range.min;
    let long_scale = long_range.max - long_range.min;
    let lat_cell = separated as u32;
    let long_cell = (separated >> 32) as u32;
    let cells = (1u64 << step) as f64;
    // `cell + 1` is 32-bit arithmetic in C and wraps for a cell of all ones.
    Some(Area {
        hash,
        latitude: Range {
            min: lat_range.min + (f64::from(lat_cell) / cells) * lat_scale,
            max: lat_range.min + (f64::from(lat_cell.wrapping_add(1)) / cells) * lat_scale,
        },
        longitude: Range {
            min: long_range.min + (f64::from(long_cell) / cells) * long_scale,
            max: long_range.min + (f64::from(long_cell.wrapping_add(1)) / cells) * long_scale,
        },
    })
}

/// A cell's centre, clamped to the indexable coordinates (Redis's
/// `geohashDecodeAreaToLongLat`).
fn area_center(area: &Area) -> [f64; 2] {
    let longitude =
        ((area.longitude.min + area.longitude.max) / 2.0).clamp(LONGITUDE_MIN, LONGITUDE_MAX);
    let latitude =
        ((area.latitude.min + area.latitude.max) / 2.0).clamp(LATITUDE_MIN, LATITUDE_MAX);
    [longitude, latitude]
}

/// C's `(uint64_t)` of a double as x86-64 computes it: truncation in range, and the
/// "integer indefinite" result of `cvttsd2si` for what does not fit (Redis casts any zset
/// score this way, so a member added with ZADD decodes as Redis decodes it).
pub fn score_to_bits(score: f64) -> u64 {
    const TWO_TO_63: f64 = 9223372036854775808.0;
    fn convert(value: f64) -> i64 {
        if value.is_nan() || !(-TWO_TO_63..TWO_TO_63).contains(&value) {
            i64::MIN
        } else {
            value as i64
        }
    }
    if score < TWO_TO_63 {
        convert(score) as u64
    } else {
        (convert(score - TWO_TO_63) as u64) ^ (1u64 << 63)
    }
}

/// The position a sorted-set score stands for (Redis's `decodeGeohash`): the centre of its
/// 26-step cell, as longitude, latitude.
pub fn decode_score(score: f64) -> [f64; 2] {
    let hash = HashBits {
        bits: score_to_bits(score),
        step: STEP_MAX,
    };
    match decode(LONGITUDE_RANGE, LATITUDE_RANGE, hash) {
        Some(area) => area_center(&area),
        None => unreachable!("a step-26 cell is never the zero cell"),
    }
}

/// The sorted-set score of a position (GEOADD), or None outside the indexable coordinates.
pub fn encode_score(longitude: f64, latitude: f64) -> Option<u64> {
    encode_wgs84(longitude, latitude, STEP_MAX).map(align_52_bits)
}

/// The standard 11-character geohash of a decoded position (GEOHASH).
pub fn geohash_string(position: [f64; 2]) -> [u8; GEOHASH_STRING_BYTES] {
    let hash = encode(
        LONGITUDE_RANGE,
        STANDARD_LATITUDE_RANGE,
        position[0],
        position[1],
        STEP_MAX,
    )
    .unwrap_or_default();
    let mut text = [b'0'; GEOHASH_STRING_BYTES];
    // Only 52 bits exist; the 11th character stays `0` as Redis prints it.
    for (index, byte) in text.iter_mut().enumerate().take(GEOHASH_STRING_BYTES - 1) {
        let shift = 52 - (index + 1) * 5;
        *byte = BASE32[((hash.bits >> shift) & 0x1f) as usize];
    }
    text
}

/// Redis's `geohash_move_x`: one cell east (`direction > 0`) or west, wrapping around.
fn move_x(hash: &mut HashBits, direction: i8) {
    if direction == 0 {
        return;
    }
    let shift = 64 - u32::from(hash.step) * 2;
    let mut x = hash.bits & 0xaaaaaaaaaaaaaaaa;
    let y = hash.bits & 0x5555555555555555;
    let zz = 0x5555555555555555u64 >> shift;
    if direction > 0 {
        x = x.wrapping_add(zz.wrapping_add(1));
    } else {
        x |= zz;
        x = x.wrapping_sub(zz.wrapping_add(1));
    }
    x &= 0xaaaaaaaaaaaaaaaau64 >> shift;
    hash.bits = x | y;
}

/// Redis's `geohash_move_y`: one cell north (`direction > 0`) or south, wrapping around.
fn move_y(hash: &mut HashBits, direction: i8) {
    if direction == 0 {
        return;
    }
    let shift = 64 - u32::from(hash.step) * 2;
    let x = hash.bits & 0xaaaaaaaaaaaaaaaa;
    let mut y = hash.bits & 0x5555555555555555;
    let zz = 0xaaaaaaaaaaaaaaaau64 >> shift;
    if direction > 0 {
        y = y.wrapping_add(zz.wrapping_add(1));
    } else {
        y |= zz;
        y = y.wrapping_sub(zz.wrapping_add(1));
    }
    y &= 0x5555555555555555u64 >> shift;
    hash.bits = x | y;
}

/// Redis's `geohashNeighbors`.
pub fn neighbors(hash: HashBits) -> Neighbors {
    assert!(
        (1..=32).contains(&hash.step),
        "neighbours exist for real cells only"
    );
    let moved = |x: i8, y: i8| {
        let mut cell = hash;
        move_x(&mut cell, x);
        move_y(&mut cell, y);
        cell
    };
    Neighbors {
        east: moved(1, 0),
        west: moved(-1, 0),
        south: moved(0, -1),
        north: moved(0, 1),
        north_west: moved(-1, 1),
        north_east: moved(1, 1),
        south_east: moved(1, -1),
        south_west: moved(-1, -1),
    }
}

/// A cell's bits shifted to the 52-bit score scale (Redis's `geohashAlign52Bits`).
pub fn align_52_bits(hash: HashBits) -> u64 {
    debug_assert!(
        hash.step <= STEP_MAX,
        "a search cell is at most as fine as a score"
    );
    hash.bits << (52 - u32::from(hash.step) * 2)
}

/// Redis's `geohashEstimateStepsByRadius`: the cell precision at which the centre cell and
/// its neighbours usually cover `range_meters`.
pub fn estimate_steps_by_radius(range_meters: f64, latitude: f64) -> u8 {
    if range_meters == 0.0 {
        return 26;
    }
    let mut range_meters = range_meters;
    let mut step: i32 = 1;
    // Bounded: the range doubles each time, and a NaN or infinite range never enters.
    while range_meters < MERCATOR_MAX_METERS {
        range_meters *= 2.0;
        step += 1;
    }
    step -= 2;
    // Meridians converge towards the poles: widen the cells there.
    if !(-66.0..=66.0).contains(&latitude) {
        step -= 1;
        if !(-80.0..=80.0).contains(&latitude) {
            step -= 1;
        }
    }
    step.clamp(1, 26) as u8
}

/// Redis's `geohashBoundingBox`: min longitude, min latitude, max longitude, max latitude.
pub fn bounding_box(shape: &Shape) -> [f64; 4] {
    let [longitude, latitude] = shape.center;
    let (height, width) = match shape.extent {
        Extent::Radius(radius) => (shape.conversion * radius, shape.conversion * radius),
        Extent::Box { width, height } => (
            shape.conversion * (height / 2.0),
            shape.conversion * (width / 2.0),
        ),
    };
    let lat_delta = radians_to_degrees(height / EARTH_RADIUS_METERS);
    let long_delta_top = radians_to_degrees(
        width / EARTH_RADIUS_METERS / degrees_to_radians(latitude + lat_delta).cos(),
    );
    let long_delta_bottom = radians_to_degrees(
        width / EARTH_RADIUS_METERS / degrees_to_radians(latitude - lat_delta).cos(),
    );
    // The box is widest on its edge nearer the pole.
    let southern_hemisphere = latitude < 0.0;
    let long_delta = if southern_hemisphere {
        long_delta_bottom
    } else {
        long_delta_top
    };
    [
        longitude - long_delta,
        latitude - lat_delta,
        longitude + long_delta,
        latitude + lat_delta,
    ]
}

/// Redis's `geohashCalculateAreasByShapeWGS84`: the centre cell and the neighbours that can
/// hold points of the shape.
pub fn areas_by_shape(shape: &Shape) -> SearchArea {
    let [min_lon, min_lat, max_lon, max_lat] = bounding_box(shape);
    let [longitude, latitude] = shape.center;
    let radius = match shape.extent {
        Extent::Radius(radius) => radius,
        // The distance from the centre to a corner.
        Extent::Box { width, height } => {
            ((width / 2.0) * (width / 2.0) + (height / 2.0) * (height / 2.0)).sqrt()
        }
    };
    let radius_meters = radius * shape.conversion;
    let mut steps = estimate_steps_by_radius(radius_meters, latitude);
    let cover = |steps: u8| {
        let hash = encode(LONGITUDE_RANGE, LATITUDE_RANGE, longitude, latitude, steps).unwrap_or(
            HashBits {
                bits: 0,
                step: steps,
            },
        );
        let around = neighbors(hash);
        (hash, around, decode_or_empty(hash))
    };
    let (mut hash, mut around, mut area) = cover(steps);

    // Near a cell's edge the estimated step can be too fine for the neighbours to reach the
    // whole shape: then one step coarser.
    let north = decode_or_empty(around.north);
    let south = decode_or_empty(around.south);
    let east = decode_or_empty(around.east);
    let west = decode_or_empty(around.west);
    let decrease_step = north.latitude.max < max_lat
        || south.latitude.min > min_lat
        || east.longitude.max < max_lon
        || west.longitude.min > min_lon;
    if steps > 1 && decrease_step {
        steps -= 1;
        (hash, around, area) = cover(steps);
    }

    // Drop the neighbours the shape cannot reach.
    if steps >= 2 {
        if area.latitude.min < min_lat {
            around.south = HashBits::ZERO;
            around.south_west = HashBits::ZERO;
            around.south_east = HashBits::ZERO;
        }
        if area.latitude.max > max_lat {
            around.north = HashBits::ZERO;
            around.north_east = HashBits::ZERO;
            around.north_west = HashBits::ZERO;
        }
        if area.longitude.min < min_lon {
            around.west = HashBits::ZERO;
            around.south_west = HashBits::ZERO;
            around.north_west = HashBits::ZERO;
        }
        if area.longitude.max > max_lon {
            around.east = HashBits::ZERO;
            around.south_east = HashBits::ZERO;
            around.north_east = HashBits::ZERO;
        }
    }
    SearchArea {
        hash,
        neighbors: around,
        area,
    }
}

/// `decode` on the stored ranges; C leaves a zeroed area when decoding fails (the all-zero
/// cell at step 0, which a search never produces), so the port does too.
fn decode_or_empty(hash: HashBits) -> Area {
    decode(LONGITUDE_RANGE, LATITUDE_RANGE, hash).unwrap_or(Area {
        hash,
        longitude: Range { min: 0.0, max: 0.0 },
        latitude: Range { min: 0.0, max: 0.0 },
    })
}

/// The distance in meters between two latitudes on one meridian (Redis's
/// `geohashGetLatDistance`: haversine reduces to the arc when the longitudes are equal).
pub fn latitude_distance(lat1: f64, lat2: f64) -> f64 {
    EARTH_RADIUS_METERS * (degrees_to_radians(lat2) - degrees_to_radians(lat1)).abs()
}

/// Haversine great-circle distance in meters (Redis's `geohashGetDistance`, with the
/// shortcut for equal longitudes that Redis 7.0.15 ships: its results differ from the full
/// formula in the last bits, which `%.4f` can show).
pub fn distance(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let lon1r = degrees_to_radians(lon1);
    let lon2r = degrees_to_radians(lon2);
    let v = ((lon2r - lon1r) / 2.0).sin();
    if v == 0.0 {
        return latitude_distance(lat1, lat2);
    }
    let lat1r = degrees_to_radians(lat1);
    let lat2r = degrees_to_radians(lat2);
    let u = ((lat2r - lat1r) / 2.0).sin();
    let a = u * u + lat1r.cos() * lat2r.cos() * v * v;
    2.0 * EARTH_RADIUS_METERS * a.sqrt().asin()
}

/// The distance from the centre `(x1, y1)` to `(x2, y2)` when it is at most `radius_meters`
/// (Redis's `geohashGetDistanceIfInRadiusWGS84`).
pub fn distance_if_in_radius(
    x1: f64,
    y1: f64,
    x2: f64,
    y2: f64,
    radius_meters: f64,
) -> Option<f64> {
    let distance = distance(x1, y1, x2, y2);
    (distance <= radius_meters).then_some(distance)
}

/// The distance from the box centre `(x1, y1)` to `(x2, y2)` when the point is inside the
/// box: its north-south distance along its own meridian and its east-west distance along its
/// own parallel are within half the height and half the width (Redis's
/// `geohashGetDistanceIfInRectangle`, latitude first as 7.0.15 checks it).
pub fn distance_if_in_rectangle(
    width_meters: f64,
    height_meters: f64,
    x1: f64,
    y1: f64,
    x2: f64,
    y2: f64,
) -> Option<f64> {
    if latitude_distance(y2, y1) > height_meters / 2.0 {
        return None;
    }
    if distance(x2, y2, x1, y2) > width_meters / 2.0 {
        return None;
    }
    Some(distance(x1, y1, x2, y2))
}

/// Whether the position `point` (decoded) lies in `shape`, and its distance in meters.
pub fn distance_if_in_shape(shape: &Shape, point: [f64; 2]) -> Option<f64> {
    let [x1, y1] = shape.center;
    let [x2, y2] = point;
    match shape.extent {
        Extent::Radius(radius) => distance_if_in_radius(x1, y1, x2, y2, radius * shape.conversion),
        Extent::Box { width, height } => distance_if_in_rectangle(
            width * shape.conversion,
            height * shape.conversion,
            x1,
            y1,
            x2,
            y2,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Values captured from Redis 7.0.15 (GEOADD then ZSCORE, GEOPOS, GEOHASH, GEODIST).

    #[test]
    fn scores_match_redis() {
        assert_eq!(encode_score(13.361389, 38.115556), Some(3479099956230698));
        assert_eq!(encode_score(15.087269, 37.502669), Some(3479447370796909));
        assert_eq!(encode_score(-180.0, -85.05112878), Some(0));
        assert_eq!(encode_score(1.0, 2.0), Some(3378080408407459));
        // The maximum longitude spills past 52 bits, as in Redis.
        assert_eq!(encode_score(180.0, 85.05112878), Some(13510798882111488));
        assert_eq!(encode_score(180.0, 85.05112879), None);
        assert_eq!(encode_score(180.000001, 0.0), None);
    }

    /// A position as Redis prints it before trimming zeros (`%.17Lf` of the double).
    fn printed(score: f64) -> [String; 2] {
        decode_score(score).map(|degrees| format!("{degrees:.17}"))
    }

    #[test]
    fn decoded_positions_match_redis() {
        assert_eq!(
            printed(3479099956230698.0),
            ["13.36138933897018433", "38.11555639549629859"]
        );
        assert_eq!(
            printed(3479447370796909.0),
            ["15.08726745843887329", "37.50266842333162032"]
        );
        assert_eq!(
            printed(0.0),
            ["-179.99999731779098511", "-85.05112751263942528"]
        );
        assert_eq!(decode_score(13510798882111488.0), [180.0, LATITUDE_MAX]);
    }

    #[test]
    fn foreign_scores_decode_as_redis_casts_them() {
        assert_eq!(score_to_bits(-1.0), u64::MAX);
        assert_eq!(score_to_bits(1.5), 1);
        assert_eq!(score_to_bits(f64::INFINITY), 0);
        assert_eq!(score_to_bits(1e20), 0);
        assert_eq!(score_to_bits(f64::NEG_INFINITY), 1 << 63);
        assert_eq!(score_to_bits(-1e19), 1 << 63);
        assert_eq!(decode_score(-1.0), [180.0, LATITUDE_MAX]);
        assert_eq!(
            printed(f64::NEG_INFINITY),
            ["180.00000000000000000", "-85.05112751263942528"]
        );
        assert_eq!(
            printed(1.5),
            ["-179.99999731779098511", "-85.05112497791824921"]
        );
        assert_eq!(decode_score(4503599627370496.0)[1], LATITUDE_MAX);
    }

    #[test]
    fn geohash_strings_match_redis() {
        let text = |score: f64| geohash_string(decode_score(score));
        assert_eq!(&text(3479099956230698.0), b"sqc8b49rny0");
        assert_eq!(&text(3479447370796909.0), b"sqdtr74hyu0");
        assert_eq!(&text(0.0), b"00bh0hbj200");
        assert_eq!(&text(1.5), b"00bh0hbj210");
        assert_eq!(&text(-1.0), b"bp05b5048p0");
    }

    #[test]
    fn distances_match_redis() {
        let [lon1, lat1] = decode_score(3479099956230698.0);
        let [lon2, lat2] = decode_score(3479447370796909.0);
        let meters = distance(lon1, lat1, lon2, lat2);
        assert_eq!(format!("{meters:.4}"), "166274.1516");
        assert_eq!(format!("{:.4}", meters / 1609.34), "103.3182");
        assert_eq!(format!("{:.4}", meters / 0.3048), "545518.8700");
        assert_eq!(
            format!("{:.4}", distance(15.0, 37.0, lon2, lat2) / 1000.0),
            "56.4413"
        );
        assert_eq!(distance(lon1, lat1, lon1, lat1), 0.0);
    }

    #[test]
    fn equal_longitudes_take_the_meridian_arc() {
        // GEOADD mer 10 10 a 10 20 b 10 -60 c, then GEOSEARCHSTORE ... STOREDIST in km.
        let [lon_a, lat_a] = decode_score(3386427883058495.0);
        let [lon_b, lat_b] = decode_score(3403951602136190.0);
        let [lon_c, lat_c] = decode_score(2326242239358267.0);
        assert_eq!(lon_a, lon_b);
        assert_eq!(
            distance(lon_a, lat_a, lon_b, lat_b) / 1000.0,
            1112.2629622800714
        );
        assert_eq!(
            distance(lon_a, lat_a, lon_c, lat_c) / 1000.0,
            7785.841017888165
        );
    }

    #[test]
    fn interleaving_round_trips() {
        for (x, y) in [
            (0u32, 0u32),
            (1, 0),
            (0, 1),
            (u32::MAX, 0),
            (0x3ff_ffff, 0x155_5555),
        ] {
            let separated = deinterleave64(interleave64(x, y));
            assert_eq!(separated as u32, x);
            assert_eq!((separated >> 32) as u32, y);
        }
    }

    #[test]
    fn neighbours_wrap_and_step_back() {
        let hash = encode_wgs84(15.0, 37.0, 10).unwrap_or_default();
        let around = neighbors(hash);
        let mut back = around.east;
        move_x(&mut back, -1);
        assert_eq!(back, hash);
        let mut back = around.north_west;
        move_x(&mut back, 1);
        move_y(&mut back, -1);
        assert_eq!(back, hash);
        // East of the easternmost cell is the westernmost one.
        let edge = encode_wgs84(179.9, 0.0, 4).unwrap_or_default();
        let east = decode_or_empty(neighbors(edge).east);
        assert_eq!(east.longitude.min, -180.0);
    }

    #[test]
    fn steps_by_radius() {
        assert_eq!(estimate_steps_by_radius(0.0, 0.0), 26);
        assert_eq!(estimate_steps_by_radius(200_000.0, 37.0), 6);
        assert_eq!(estimate_steps_by_radius(200_000.0, 70.0), 5);
        assert_eq!(estimate_steps_by_radius(200_000.0, -85.0), 4);
        assert_eq!(estimate_steps_by_radius(1e9, 0.0), 1);
        assert_eq!(estimate_steps_by_radius(0.001, 0.0), 26);
    }

    #[test]
    fn rectangle_inclusion_uses_each_axis() {
        let shape = Shape {
            center: [15.0, 37.0],
            conversion: 1000.0,
            extent: Extent::Box {
                width: 400.0,
                height: 400.0,
            },
        };
        let palermo = decode_score(3479099956230698.0);
        let inside = distance_if_in_shape(&shape, palermo);
        assert_eq!(
            inside.map(|meters| format!("{:.4}", meters / 1000.0)),
            Some("190.4424".into())
        );
        let narrow = Shape {
            extent: Extent::Box {
                width: 100.0,
                height: 400.0,
            },
            ..shape
        };
        assert_eq!(distance_if_in_shape(&narrow, palermo), None);
    }
}
