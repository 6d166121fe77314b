/* keccak.c: keccak256 as the EVM computes it, for many equal-length messages in one call.
 *
 * Written from the Keccak reference (Bertoni, Daemen, Peeters, Van Assche, "The Keccak
 * reference", version 3.0; the permutation is FIPS 202's Keccak-f[1600], section 3): a
 * sponge of rate 1088 bits (136 bytes) and capacity 512, the ORIGINAL Keccak padding
 * (pad10*1: a 0x01 byte after the message, 0x80 in the last byte of the block, 0x81 when
 * both fall on one byte), not NIST SHA3-256's 0x06 domain byte; the digest is the first
 * 32 bytes of the state, lanes little-endian. keccak256("") = c5d2...a470.
 *
 * Why a batch call: a trace commitment hashes every row of every slot (hundreds of
 * thousands of 384..1536-byte rows per MiniLM batch) and every pair of every Merkle level.
 * One Python call per row costs more than the hash itself, and no thread can share that
 * work while the GIL is held. Here one call hashes `count` messages of `len` bytes lying
 * `stride` bytes apart into 32 * count contiguous output bytes, split across threads
 * (ctypes releases the GIL for the call), several messages at a time per thread in SIMD
 * lanes where the CPU has them: 8 lanes with AVX-512 (64-bit rotates and three-input
 * logic in single instructions), 4 with AVX2, else 1 (plain 64-bit C, any CPU).
 *
 * Exported (see offchain/referee/hashing.py, which checks every result path against the
 * per-message keccak when it loads this library):
 *   int referee_keccak_version(void);
 *   int referee_keccak_best_lanes(void);   8, 4 or 1 on this CPU
 *   int referee_keccak256_many(data, len, stride, count, out, threads, lanes);
 * Built by offchain/referee/native/build.py (cc -O3 -shared -fPIC -pthread).
 */

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define VERSION 1
#define RATE 136          /* bytes: (1600 - 2 * 256) / 8 */
#define RATE_LANES 17     /* RATE / 8 */
#define MAX_THREADS 64
#define MIN_BLOCKS_PER_THREAD 2048  /* ~0.5 ms of hashing: more than a thread start costs */

static const uint64_t RC[24] = {
    0x0000000000000001ULL, 0x0000000000008082ULL, 0x800000000000808AULL, 0x8000000080008000ULL,
    0x000000000000808BULL, 0x0000000080000001ULL, 0x8000000080008081ULL, 0x8000000000008009ULL,
    0x000000000000008AULL, 0x0000000000000088ULL, 0x0000000080008009ULL, 0x000000008000000AULL,
    0x000000008000808BULL, 0x800000000000008BULL, 0x8000000000008089ULL, 0x8000000000008003ULL,
    0x8000000000008002ULL, 0x8000000000000080ULL, 0x000000000000800AULL, 0x800000008000000AULL,
    0x8000000080008081ULL, 0x8000000000008080ULL, 0x0000000080000001ULL, 0x8000000080008008ULL,
};

/* rho offsets of lane x + 5y (the reference's table r[x][y], laid out by lane index) */
static const int RHO[25] = {
     0,  1, 62, 28, 27,
    36, 44,  6, 55, 20,
     3, 10, 43, 25, 39,
    41, 45, 15, 21,  8,
    18,  2, 61, 56, 14,
};

/* pi: lane x + 5y moves to lane y + 5((2x + 3y) mod 5) */
static const int PI[25] = {
     0, 10, 20,  5, 15,
    16,  1, 11, 21,  6,
     7, 17,  2, 12, 22,
    23,  8, 18,  3, 13,
    14, 24,  9, 19,  4,
};

/* One Keccak-f[1600] over lanes of type T, written once for every lane width. The caller
 * defines T and the operations XOR, XOR5, ROL (a constant count in 1..63), CHI
 * (a ^ (~b & c)) and RCX (xor a round constant into every lane). The loops have constant
 * bounds and are unrolled by the compiler, which then keeps the 25 lanes in registers. */
#define KECCAK_F1600(NAME, ATTR)                                                        \
    ATTR static void NAME(T *s) {                                                       \
        T a[25], b[25], c[5], d[5];                                                     \
        for (int i = 0; i < 25; i++) a[i] = s[i];                                       \
        for (int round = 0; round < 24; round++) {                                      \
            _Pragma("GCC unroll 5")                                                     \
            for (int x = 0; x < 5; x++)                                                 \
                c[x] = XOR5(a[x], a[x + 5], a[x + 10], a[x + 15], a[x + 20]);           \
            _Pragma("GCC unroll 5")                                                     \
            for (int x = 0; x < 5; x++)                                                 \
                d[x] = XOR(c[(x + 4) % 5], ROL(c[(x + 1) % 5], 1));                     \
            _Pragma("GCC unroll 25")                                                    \
            for (int i = 0; i < 25; i++)                                                \
                b[PI[i]] = RHO[i] ? ROL(XOR(a[i], d[i % 5]), RHO[i]) : XOR(a[i], d[i % 5]); \
            _Pragma("GCC unroll 25")                                                    \
            for (int i = 0; i < 25; i++)                                                \
                a[i] = CHI(b[i], b[(i % 5 + 1) % 5 + i / 5 * 5], b[(i % 5 + 2) % 5 + i / 5 * 5]); \
            a[0] = RCX(a[0], RC[round]);                                                \
        }                                                                               \
        for (int i = 0; i < 25; i++) s[i] = a[i];                                       \
    }

static inline uint64_t load64(const uint8_t *p) {
    uint64_t v = 0;  /* little-endian whatever the host; compilers emit one load on x86 */
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static inline void store64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* The last block of a message of `len` bytes: its tail, then the padding. */
static void last_block(uint8_t *block, const uint8_t *msg, size_t len) {
    size_t tail = len % RATE;
    memset(block, 0, RATE);
    memcpy(block, msg + len - tail, tail);
    block[tail] ^= 0x01;
    block[RATE - 1] ^= 0x80;
}

/* ---- 1 lane: plain C ------------------------------------------------------------------ */

#define T uint64_t
#define XOR(a, b) ((a) ^ (b))
#define XOR5(a, b, c, d, e) ((a) ^ (b) ^ (c) ^ (d) ^ (e))
#define ROL(a, n) (((a) << (n)) | ((a) >> (64 - (n))))
#define CHI(a, b, c) ((a) ^ (~(b) & (c)))
#define RCX(a, rc) ((a) ^ (rc))
KECCAK_F1600(permute1, )
#undef T
#undef XOR
#undef XOR5
#undef ROL
#undef CHI
#undef RCX

static void absorb1(uint64_t *s, const uint8_t *block) {
    for (int i = 0; i < RATE_LANES; i++) s[i] ^= load64(block + 8 * i);
    permute1(s);
}

static void hash1(const uint8_t *msg, size_t len, uint8_t *out) {
    uint64_t s[25] = {0};
    uint8_t block[RATE];
    for (size_t off = 0; off + RATE <= len; off += RATE) absorb1(s, msg + off);
    last_block(block, msg, len);
    absorb1(s, block);
    for (int i = 0; i < 4; i++) store64(out + 8 * i, s[i]);
}

/* ---- 4 and 8 lanes: lane j of every state word belongs to message j ------------------- */

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define T __m512i
#define XOR(a, b) _mm512_xor_si512(a, b)
#define XOR5(a, b, c, d, e) _mm512_ternarylogic_epi64(_mm512_ternarylogic_epi64(a, b, c, 0x96), d, e, 0x96)
#define ROL(a, n) _mm512_rol_epi64(a, n)
#define CHI(a, b, c) _mm512_ternarylogic_epi64(a, b, c, 0xD2)
#define RCX(a, rc) _mm512_xor_si512(a, _mm512_set1_epi64((long long)(rc)))
KECCAK_F1600(permute8, __attribute__((target("avx512f"))))
#undef T
#undef XOR
#undef XOR5
#undef ROL
#undef CHI
#undef RCX

#define T __m256i
#define XOR(a, b) _mm256_xor_si256(a, b)
#define XOR5(a, b, c, d, e) XOR(XOR(XOR(a, b), XOR(c, d)), e)
#define ROL(a, n) _mm256_or_si256(_mm256_slli_epi64(a, n), _mm256_srli_epi64(a, 64 - (n)))
#define CHI(a, b, c) XOR(a, _mm256_andnot_si256(b, c))
#define RCX(a, rc) XOR(a, _mm256_set1_epi64x((long long)(rc)))
KECCAK_F1600(permute4, __attribute__((target("avx2"))))
#undef T
#undef XOR
#undef XOR5
#undef ROL
#undef CHI
#undef RCX

/* Block `off` of each of `lanes` messages at msg, msg + stride, ... copied side by side: row j
 * of `blocks` is message j's block (padded when it is the last). Copying first keeps the
 * reads of the messages sequential: gathering lanes straight from rows 384 bytes apart ran
 * at a quarter of the speed once the rows were out of cache (the prefetchers miss them). */
static void gather_blocks(uint8_t blocks[][RATE], int lanes, const uint8_t *msg, size_t len, size_t stride,
                          size_t off) {
    for (int j = 0; j < lanes; j++) {
        /* the block each row hashes next (after its last: the next group's first), while this
         * one is hashed; a prefetch never faults, even past the end of the data */
        const uint8_t *next = off + RATE <= len ? msg + j * stride + off + RATE : msg + (lanes + j) * stride;
        __builtin_prefetch(next);
        __builtin_prefetch(next + 64);
        __builtin_prefetch(next + RATE - 1);
        if (off + RATE <= len) memcpy(blocks[j], msg + j * stride + off, RATE);
        else last_block(blocks[j], msg + j * stride, len);
    }
}

/* 8 messages at msg, msg + stride, ...: lane j of state word i is word i of message j. */
__attribute__((target("avx512f")))
static void hash8(const uint8_t *msg, size_t len, size_t stride, uint8_t *out) {
    __m512i s[25];
    uint8_t blocks[8][RATE];
    uint64_t digest[4][8];
    const __m512i at = _mm512_set_epi64(7 * RATE, 6 * RATE, 5 * RATE, 4 * RATE, 3 * RATE, 2 * RATE, RATE, 0);
    for (int i = 0; i < 25; i++) s[i] = _mm512_setzero_si512();
    for (size_t off = 0; off <= len; off += RATE) {  /* every full block, then the padded one */
        gather_blocks(blocks, 8, msg, len, stride, off);
        for (int i = 0; i < RATE_LANES; i++)
            s[i] = _mm512_xor_si512(s[i], _mm512_i64gather_epi64(at, &blocks[0][8 * i], 1));
        permute8(s);
    }
    for (int i = 0; i < 4; i++) _mm512_storeu_si512(digest[i], s[i]);
    for (int j = 0; j < 8; j++)
        for (int i = 0; i < 4; i++) memcpy(out + 32 * j + 8 * i, &digest[i][j], 8);
}

__attribute__((target("avx2")))
static void hash4(const uint8_t *msg, size_t len, size_t stride, uint8_t *out) {
    __m256i s[25];
    uint8_t blocks[4][RATE];
    uint64_t digest[4][4];
    const __m256i at = _mm256_set_epi64x(3 * RATE, 2 * RATE, RATE, 0);
    for (int i = 0; i < 25; i++) s[i] = _mm256_setzero_si256();
    for (size_t off = 0; off <= len; off += RATE) {
        gather_blocks(blocks, 4, msg, len, stride, off);
        for (int i = 0; i < RATE_LANES; i++)
            s[i] = _mm256_xor_si256(s[i], _mm256_i64gather_epi64((const long long *)&blocks[0][8 * i], at, 1));
        permute4(s);
    }
    for (int i = 0; i < 4; i++) _mm256_storeu_si256((__m256i *)digest[i], s[i]);
    for (int j = 0; j < 4; j++)
        for (int i = 0; i < 4; i++) memcpy(out + 32 * j + 8 * i, &digest[i][j], 8);
}

int referee_keccak_best_lanes(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return 8;
    if (__builtin_cpu_supports("avx2")) return 4;
    return 1;
}
#else
int referee_keccak_best_lanes(void) { return 1; }
#endif

int referee_keccak_version(void) { return VERSION; }

/* ---- the batch call ------------------------------------------------------------------- */

typedef struct {
    const uint8_t *data;
    size_t len, stride, first, end;
    uint8_t *out;
    int lanes;
} Chunk;

static void *hash_chunk(void *arg) {
    const Chunk *c = arg;
    size_t k = c->first;
#if defined(__x86_64__) && defined(__GNUC__)
    if (c->lanes == 8)
        for (; k + 8 <= c->end; k += 8) hash8(c->data + k * c->stride, c->len, c->stride, c->out + 32 * k);
    if (c->lanes >= 4)
        for (; k + 4 <= c->end; k += 4) hash4(c->data + k * c->stride, c->len, c->stride, c->out + 32 * k);
#endif
    for (; k < c->end; k++) hash1(c->data + k * c->stride, c->len, c->out + 32 * k);
    return NULL;
}

/* keccak256 of message k = data[k * stride, k * stride + len) into out[32 k, 32 k + 32), for
 * k < count. threads: at most this many (1 .. 64), fewer when there is little work; lanes: 0
 * for the best this CPU has, or 1, 4, 8 (tests pin each; more than the CPU has is lowered).
 * Returns the lanes used, or -1 for bad arguments. */
int referee_keccak256_many(const uint8_t *data, size_t len, size_t stride, size_t count, uint8_t *out,
                           int threads, int lanes) {
    int best = referee_keccak_best_lanes();
    if (lanes == 0 || lanes > best) lanes = best;
    if ((lanes != 1 && lanes != 4 && lanes != 8) || threads < 1 || (count > 1 && stride < len)) return -1;
    if (lanes == 8 && best < 8) lanes = 4;
    size_t blocks = count * (len / RATE + 1);
    size_t most = blocks / MIN_BLOCKS_PER_THREAD;
    if ((size_t)threads > most) threads = most > 1 ? (int)most : 1;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    Chunk chunks[MAX_THREADS];
    pthread_t ids[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    /* chunk boundaries on multiples of 8 messages, so that every chunk fills its lanes */
    size_t groups = (count + 7) / 8;
    for (int t = 0; t < threads; t++) {
        size_t first = 8 * (groups * t / threads), end = 8 * (groups * (t + 1) / threads);
        chunks[t] = (Chunk){data, len, stride, first < count ? first : count, end < count ? end : count, out, lanes};
    }
    for (int t = 1; t < threads; t++)  /* a thread that cannot start leaves its chunk to this one */
        started[t] = pthread_create(&ids[t], NULL, hash_chunk, &chunks[t]) == 0;
    hash_chunk(&chunks[0]);
    for (int t = 1; t < threads; t++) {
        if (started[t]) pthread_join(ids[t], NULL);
        else hash_chunk(&chunks[t]);
    }
    return lanes;
}
