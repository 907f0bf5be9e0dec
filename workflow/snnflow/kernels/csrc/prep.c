/* Data-prep kernels of snnflow, called through ctypes (snnflow/native.py).
 *
 * parse_files   N-MNIST .bin files -> pixel codes (p * 34 + y) * 34 + x, file order
 * bin_frames    pixel codes of consecutive samples -> dense (T, 2, 34, 34) count frames
 * zlib_sparse   any byte buffer -> a zlib stream (what HDF5's gzip filter reads),
 *               in time proportional to its nonzero bytes rather than its size
 *
 * Frames are ~95% zeros. zlib spends its time walking every zero byte; here a run of
 * zeros is found eight bytes at a time and written as one literal 0 plus
 * length-258 copies at distance 1, with one dynamic Huffman block per buffer whose
 * codes are built from the buffer's own token counts. The Adler-32 of a zero run is
 * computed in closed form (B += A * run).
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the zero-run scan and the bit writer assume a little-endian CPU"
#endif

#define SENSOR 34
#define PIXELS_PER_FRAME (2 * SENSOR * SENSOR)
#define OVERFLOW_Y 240
#define TIME_OVERFLOW_US 8192u

/* ------------------------------------------------------------------ parsing */

static int64_t read_whole(const char *path, uint8_t **buffer, size_t *capacity) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) return -1;
  struct stat st;
  if (fstat(fd, &st) != 0) { close(fd); return -1; }
  size_t size = (size_t)st.st_size;
  if (size > *capacity) {
    uint8_t *grown = realloc(*buffer, size);
    if (!grown) { close(fd); return -1; }
    *buffer = grown;
    *capacity = size;
  }
  size_t done = 0;
  while (done < size) {
    ssize_t got = read(fd, *buffer + done, size - done);
    if (got <= 0) { close(fd); return -1; }
    done += (size_t)got;
  }
  close(fd);
  return (int64_t)size;
}

/* Parse `count` recordings, appending their codes to `codes` (room for `capacity`)
 * and each one's event count to `counts`; with `times` (NULL: not wanted), each
 * event's timestamp in microseconds, tonic's rule for the overflow markers: each adds
 * TIME_OVERFLOW_US to the timestamps of the events after it. Returns the number of
 * codes written, or -(i + 1) when recording i is unreadable, empty, not whole 5-byte
 * records, has an event outside the sensor, a timestamp beyond 32 bits, or does not
 * fit; the caller then reports why. */
int64_t parse_files(const char **paths, int64_t count, uint16_t *codes, int64_t capacity,
                    int64_t *counts, uint32_t *times) {
  uint8_t *buffer = NULL;
  size_t buffer_size = 0;
  int64_t written = 0;
  for (int64_t f = 0; f < count; f++) {
    int64_t size = read_whole(paths[f], &buffer, &buffer_size);
    if (size <= 0 || size % 5 != 0 || written + size / 5 > capacity) {
      free(buffer);
      return -(f + 1);
    }
    int64_t first = written;
    uint64_t overflow = 0;
    for (const uint8_t *r = buffer, *end = buffer + size; r < end; r += 5) {
      unsigned x = r[0], y = r[1];
      if (y == OVERFLOW_Y) { /* timestamp-overflow marker, not an event */
        overflow += TIME_OVERFLOW_US;
        continue;
      }
      if (x >= SENSOR || y >= SENSOR) {
        free(buffer);
        return -(f + 1);
      }
      if (times) {
        uint64_t t = overflow + ((uint64_t)(r[2] & 0x7F) << 16 | (uint64_t)r[3] << 8 | r[4]);
        if (t > UINT32_MAX) {
          free(buffer);
          return -(f + 1);
        }
        times[written] = (uint32_t)t;
      }
      codes[written++] = (uint16_t)(((r[2] >> 7) * SENSOR + y) * SENSOR + x);
    }
    counts[f] = written - first;
  }
  free(buffer);
  return written;
}

/* ------------------------------------------------------------------ binning */

/* Bin samples first .. first+count-1 into `frames`, which holds `capacity` >= count
 * samples and is zeroed here (itemsize 1 or 2 bytes per count): T runs of n / T
 * events, the last also taking n mod T. Returns 0, -1 when a count does not fit the
 * item size, -2 for a code off the sensor (a damaged event store). */
int bin_frames(const uint16_t *codes, const int64_t *offsets, int64_t first, int64_t count,
               int64_t T, int64_t itemsize, void *frames, int64_t capacity) {
  const size_t per_sample = (size_t)T * PIXELS_PER_FRAME;
  memset(frames, 0, (size_t)capacity * per_sample * (size_t)itemsize);
  for (int64_t s = 0; s < count; s++) {
    const uint16_t *c = codes + offsets[first + s];
    const int64_t n = offsets[first + s + 1] - offsets[first + s];
    const int64_t per_frame = n / T;
    for (int64_t k = 0; k < T; k++) {
      const int64_t start = k * per_frame, stop = k == T - 1 ? n : start + per_frame;
      const size_t base = (size_t)s * per_sample + (size_t)k * PIXELS_PER_FRAME;
      for (int64_t i = start; i < stop; i++) {
        if (c[i] >= PIXELS_PER_FRAME) return -2;
        if (itemsize == 1) {
          if (++((uint8_t *)frames)[base + c[i]] == 0) return -1;
        } else {
          if (++((uint16_t *)frames)[base + c[i]] == 0) return -1;
        }
      }
    }
  }
  return 0;
}

/* bin_frames by time (snnflow.data.frames): T windows of dt = (t_last - t_first) / T
 * microseconds from the first event, the last frame also taking the events after them
 * (all of them when dt = 0); an earlier timestamp than the first counts in frame 0.
 * The same returns as bin_frames. */
int bin_frames_by_time(const uint16_t *codes, const uint32_t *times, const int64_t *offsets,
                       int64_t first, int64_t count, int64_t T, int64_t itemsize, void *frames,
                       int64_t capacity) {
  const size_t per_sample = (size_t)T * PIXELS_PER_FRAME;
  memset(frames, 0, (size_t)capacity * per_sample * (size_t)itemsize);
  for (int64_t s = 0; s < count; s++) {
    const int64_t start = offsets[first + s], stop = offsets[first + s + 1];
    if (stop <= start) continue;
    const int64_t t0 = times[start], dt = ((int64_t)times[stop - 1] - t0) / T;
    const size_t base = (size_t)s * per_sample;
    for (int64_t i = start; i < stop; i++) {
      int64_t k = dt > 0 ? ((int64_t)times[i] - t0) / dt : T - 1;
      if (k < 0) k = 0; /* C division truncates: a negative quotient is an earlier time */
      if (k > T - 1) k = T - 1;
      if (codes[i] >= PIXELS_PER_FRAME) return -2;
      const size_t at = base + (size_t)k * PIXELS_PER_FRAME + codes[i];
      if (itemsize == 1) {
        if (++((uint8_t *)frames)[at] == 0) return -1;
      } else {
        if (++((uint16_t *)frames)[at] == 0) return -1;
      }
    }
  }
  return 0;
}

/* ------------------------------------------------------------------ deflate */

#define LITLEN_SYMBOLS 286
#define DIST_SYMBOLS 30
#define CODELEN_SYMBOLS 19
#define END_OF_BLOCK 256
#define MAX_MATCH 258
#define ADLER_MOD 65521u

static const uint8_t CODELEN_ORDER[CODELEN_SYMBOLS] = {16, 17, 18, 0, 8,  7, 9,  6, 10, 5,
                                                       11, 4,  12, 3, 13, 2, 14, 1, 15};
static const uint16_t LENGTH_BASE[29] = {3,  4,  5,  6,  7,  8,  9,  10,  11,  13,
                                         15, 17, 19, 23, 27, 31, 35, 43,  51,  59,
                                         67, 83, 99, 115, 131, 163, 195, 227, 258};
static const uint8_t LENGTH_EXTRA[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                         2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};

/* Deflate symbol (257..285) of each match length 3..258. */
static uint16_t LENGTH_SYMBOL[MAX_MATCH + 1];

__attribute__((constructor)) static void fill_length_symbols(void) {
  for (int code = 0, length = 3; length <= MAX_MATCH; length++) {
    while (code < 28 && LENGTH_BASE[code + 1] <= length) code++;
    LENGTH_SYMBOL[length] = (uint16_t)(257 + code);
  }
}

typedef struct {
  uint8_t *out;
  size_t pos;
  uint64_t bits;
  int used;
} BitWriter;

/* Append `count` (<= 32) bits; whole 32-bit words go out as they fill. */
static inline void put_bits(BitWriter *w, uint64_t value, int count) {
  w->bits |= value << w->used;
  w->used += count;
  if (w->used >= 32) {
    uint32_t word = (uint32_t)w->bits;
    memcpy(w->out + w->pos, &word, 4); /* little-endian: the bit order deflate wants */
    w->pos += 4;
    w->bits >>= 32;
    w->used -= 32;
  }
}

static void flush_bits(BitWriter *w) {
  for (; w->used > 0; w->used -= 8) {
    w->out[w->pos++] = (uint8_t)w->bits;
    w->bits >>= 8;
  }
  w->used = 0;
}

/* Huffman code lengths for `freq` (at least two nonzero), none longer than
 * `max_bits`: build the optimal tree, and while it is too deep halve the counts
 * (the tree flattens) and build again. */
static void code_lengths(const uint64_t *freq, int symbols, int max_bits, uint8_t *lengths) {
  uint64_t weight[2 * LITLEN_SYMBOLS];
  int parent[2 * LITLEN_SYMBOLS], leaves[LITLEN_SYMBOLS];
  uint64_t scaled[LITLEN_SYMBOLS];
  for (int s = 0; s < symbols; s++) scaled[s] = freq[s];
  for (;;) {
    int n = 0;
    for (int s = 0; s < symbols; s++)
      if (scaled[s]) leaves[n++] = s;
    /* insertion sort of leaves by weight (ascending) */
    for (int i = 1; i < n; i++) {
      int s = leaves[i], j = i;
      while (j > 0 && scaled[leaves[j - 1]] > scaled[s]) { leaves[j] = leaves[j - 1]; j--; }
      leaves[j] = s;
    }
    for (int i = 0; i < n; i++) weight[i] = scaled[leaves[i]];
    /* two-queue merge: nodes 0..n-1 leaves (sorted), n.. internal (created in order) */
    int next_leaf = 0, next_internal = n, created = n;
    for (int merge = 0; merge < n - 1; merge++) {
      int pick[2];
      for (int k = 0; k < 2; k++) {
        if (next_leaf < n && (next_internal >= created || weight[next_leaf] <= weight[next_internal]))
          pick[k] = next_leaf++;
        else
          pick[k] = next_internal++;
      }
      weight[created] = weight[pick[0]] + weight[pick[1]];
      parent[pick[0]] = parent[pick[1]] = created;
      created++;
    }
    int depth[2 * LITLEN_SYMBOLS], deepest = 0;
    depth[created - 1] = 0;
    for (int node = created - 2; node >= 0; node--) {
      depth[node] = depth[parent[node]] + 1;
      if (node < n && depth[node] > deepest) deepest = depth[node];
    }
    if (deepest <= max_bits) {
      memset(lengths, 0, (size_t)symbols);
      for (int i = 0; i < n; i++) lengths[leaves[i]] = (uint8_t)depth[i];
      return;
    }
    for (int s = 0; s < symbols; s++)
      if (scaled[s]) scaled[s] = (scaled[s] + 1) / 2;
  }
}

/* Canonical codes (RFC 1951 3.2.2), bit-reversed because deflate sends them
 * most significant bit first through an LSB-first bit stream. */
static void canonical_codes(const uint8_t *lengths, int symbols, uint16_t *codes) {
  int count[16] = {0};
  uint16_t next[16];
  for (int s = 0; s < symbols; s++) count[lengths[s]]++;
  count[0] = 0;
  uint16_t code = 0;
  for (int bits = 1; bits < 16; bits++) {
    code = (uint16_t)((code + count[bits - 1]) << 1);
    next[bits] = code;
  }
  for (int s = 0; s < symbols; s++) {
    int len = lengths[s];
    if (!len) continue;
    uint16_t c = next[len]++, reversed = 0;
    for (int b = 0; b < len; b++) reversed |= (uint16_t)(((c >> b) & 1) << (len - 1 - b));
    codes[s] = reversed;
  }
}

static void at_least_two(uint64_t *freq, int symbols) {
  int nonzero = 0;
  for (int s = 0; s < symbols; s++) nonzero += freq[s] != 0;
  for (int s = 0; s < symbols && nonzero < 2; s++)
    if (!freq[s]) { freq[s] = 1; nonzero++; }
}

/* Worst-case size of zlib_sparse's output for `size` input bytes. */
int64_t zlib_sparse_bound(int64_t size) { return 1024 + size * 5; }

/* The zlib stream of one buffer is made in four passes: tokens (with their symbol
 * counts and the Adler-32), the block's Huffman codes, the block header, the tokens. */

typedef struct {
  uint64_t a, b;
} Adler32;

typedef struct {
  uint8_t lit_len[LITLEN_SYMBOLS], dist_len[DIST_SYMBOLS];
  uint16_t lit_code[LITLEN_SYMBOLS], dist_code[DIST_SYMBOLS];
  int hlit, hdist; /* literal/length and distance codes sent */
} BlockCodes;

/* Pass 1: `in` as tokens, literal bytes (< 256) or 256 + match length (distance 1),
 * counting each symbol; returns the number of tokens. */
static int64_t tokenize(const uint8_t *in, int64_t size, uint16_t *tokens, uint64_t *lit_freq,
                        uint64_t *dist_freq, Adler32 *adler) {
  uint64_t adler_a = adler->a, adler_b = adler->b;
  int64_t ntokens = 0, i = 0;
  while (i < size) {
    uint8_t v = in[i];
    if (v) {
      tokens[ntokens++] = v;
      lit_freq[v]++;
      adler_a += v;
      adler_b += adler_a;
      i++;
    } else {
      int64_t j = i + 1;
      for (;;) { /* to the next nonzero byte, eight at a time */
        uint64_t word;
        if (j + 8 > size) {
          while (j < size && in[j] == 0) j++;
          break;
        }
        memcpy(&word, in + j, 8);
        if (word) {
          j += __builtin_ctzll(word) >> 3; /* little-endian: lowest byte first */
          break;
        }
        j += 8;
      }
      int64_t run = j - i;
      adler_b += adler_a * (uint64_t)run;
      tokens[ntokens++] = 0;
      lit_freq[0]++;
      run--;
      while (run >= 3) {
        int64_t m = run <= MAX_MATCH ? run : (run - MAX_MATCH < 3 ? run - 3 : MAX_MATCH);
        tokens[ntokens++] = (uint16_t)(256 + m);
        lit_freq[LENGTH_SYMBOL[m]]++;
        dist_freq[0]++;
        run -= m;
      }
      for (; run > 0; run--) {
        tokens[ntokens++] = 0;
        lit_freq[0]++;
      }
      i = j;
    }
    /* keep a, b small enough that b + a * run cannot overflow (run < 2^31) */
    if (adler_a >= (1u << 30) || adler_b >= (1ull << 61)) {
      adler_a %= ADLER_MOD;
      adler_b %= ADLER_MOD;
    }
  }
  adler->a = adler_a;
  adler->b = adler_b;
  return ntokens;
}

/* Pass 2: the block's Huffman codes from the symbol counts (end of block included). */
static void build_block_codes(uint64_t *lit_freq, uint64_t *dist_freq, BlockCodes *c) {
  lit_freq[END_OF_BLOCK] = 1;
  at_least_two(lit_freq, LITLEN_SYMBOLS);
  at_least_two(dist_freq, DIST_SYMBOLS);
  code_lengths(lit_freq, LITLEN_SYMBOLS, 15, c->lit_len);
  code_lengths(dist_freq, DIST_SYMBOLS, 15, c->dist_len);
  canonical_codes(c->lit_len, LITLEN_SYMBOLS, c->lit_code);
  canonical_codes(c->dist_len, DIST_SYMBOLS, c->dist_code);
  c->hlit = LITLEN_SYMBOLS;
  c->hdist = DIST_SYMBOLS;
  while (c->hlit > 257 && !c->lit_len[c->hlit - 1]) c->hlit--;
  while (c->hdist > 1 && !c->dist_len[c->hdist - 1]) c->hdist--;
}

/* The code lengths sent (literal/length then distance), run-length coded with symbols
 * 16 (repeat the last 3-6 times), 17 (3-10 zeros) and 18 (11-138 zeros); returns the
 * number of symbols. */
static int run_length_code(const BlockCodes *c, uint8_t *rle_sym, uint8_t *rle_extra) {
  uint8_t all_len[LITLEN_SYMBOLS + DIST_SYMBOLS];
  memcpy(all_len, c->lit_len, (size_t)c->hlit);
  memcpy(all_len + c->hlit, c->dist_len, (size_t)c->hdist);
  int total = c->hlit + c->hdist, nrle = 0;
  for (int k = 0; k < total;) {
    int len = all_len[k], run = 1;
    while (k + run < total && all_len[k + run] == len) run++;
    k += run;
    if (len == 0) {
      while (run >= 11) { int r = run > 138 ? 138 : run; rle_sym[nrle] = 18; rle_extra[nrle++] = (uint8_t)(r - 11); run -= r; }
      if (run >= 3) { rle_sym[nrle] = 17; rle_extra[nrle++] = (uint8_t)(run - 3); run = 0; }
    } else {
      rle_sym[nrle] = (uint8_t)len; rle_extra[nrle++] = 0; run--;
      while (run >= 3) { int r = run > 6 ? 6 : run; rle_sym[nrle] = 16; rle_extra[nrle++] = (uint8_t)(r - 3); run -= r; }
    }
    for (; run > 0; run--) { rle_sym[nrle] = (uint8_t)len; rle_extra[nrle++] = 0; }
  }
  return nrle;
}

/* Pass 3: the header of one final dynamic block: the code-length code, then the code
 * lengths in it. */
static void write_block_header(BitWriter *w, const BlockCodes *c) {
  uint8_t rle_sym[LITLEN_SYMBOLS + DIST_SYMBOLS], rle_extra[LITLEN_SYMBOLS + DIST_SYMBOLS];
  int nrle = run_length_code(c, rle_sym, rle_extra);
  uint64_t cl_freq[CODELEN_SYMBOLS] = {0};
  for (int k = 0; k < nrle; k++) cl_freq[rle_sym[k]]++;
  at_least_two(cl_freq, CODELEN_SYMBOLS);
  uint8_t cl_len[CODELEN_SYMBOLS];
  uint16_t cl_code[CODELEN_SYMBOLS];
  code_lengths(cl_freq, CODELEN_SYMBOLS, 7, cl_len);
  canonical_codes(cl_len, CODELEN_SYMBOLS, cl_code);
  int hclen = CODELEN_SYMBOLS;
  while (hclen > 4 && !cl_len[CODELEN_ORDER[hclen - 1]]) hclen--;
  put_bits(w, 1, 1); /* final block */
  put_bits(w, 2, 2); /* dynamic Huffman */
  put_bits(w, (uint32_t)(c->hlit - 257), 5);
  put_bits(w, (uint32_t)(c->hdist - 1), 5);
  put_bits(w, (uint32_t)(hclen - 4), 4);
  for (int k = 0; k < hclen; k++) put_bits(w, cl_len[CODELEN_ORDER[k]], 3);
  static const int RLE_EXTRA_BITS[3] = {2, 3, 7};
  for (int k = 0; k < nrle; k++) {
    put_bits(w, cl_code[rle_sym[k]], cl_len[rle_sym[k]]);
    if (rle_sym[k] >= 16) put_bits(w, rle_extra[k], RLE_EXTRA_BITS[rle_sym[k] - 16]);
  }
}

/* Pass 4: the tokens in the block's codes, then the end of the block. */
static void write_tokens(BitWriter *w, const uint16_t *tokens, int64_t ntokens,
                         const BlockCodes *c) {
  for (int64_t k = 0; k < ntokens; k++) {
    unsigned t = tokens[k];
    if (t < 256) {
      put_bits(w, c->lit_code[t], c->lit_len[t]);
    } else {
      unsigned length = t - 256;
      int sym = LENGTH_SYMBOL[length];
      put_bits(w, c->lit_code[sym] | (uint64_t)(length - LENGTH_BASE[sym - 257]) << c->lit_len[sym],
               c->lit_len[sym] + LENGTH_EXTRA[sym - 257]);
      put_bits(w, c->dist_code[0], c->dist_len[0]);
    }
  }
  put_bits(w, c->lit_code[END_OF_BLOCK], c->lit_len[END_OF_BLOCK]);
}

/* Compress in[0..size) (size < 2^31) into out (zlib_sparse_bound(size) bytes), with
 * `tokens` as scratch (size uint16 values); returns the length written. */
int64_t zlib_sparse(const uint8_t *in, int64_t size, uint8_t *out, uint16_t *tokens) {
  uint64_t lit_freq[LITLEN_SYMBOLS] = {0}, dist_freq[DIST_SYMBOLS] = {0};
  Adler32 adler = {1, 0};
  int64_t ntokens = tokenize(in, size, tokens, lit_freq, dist_freq, &adler);
  BlockCodes codes;
  build_block_codes(lit_freq, dist_freq, &codes);
  BitWriter w = {out, 0, 0, 0};
  put_bits(&w, 0x78, 8); /* deflate, 32 KiB window */
  put_bits(&w, 0x01, 8); /* fastest level; (0x78 * 256 + 0x01) % 31 == 0 */
  write_block_header(&w, &codes);
  write_tokens(&w, tokens, ntokens, &codes);
  flush_bits(&w);
  uint32_t sum = (uint32_t)(((adler.b % ADLER_MOD) << 16) | (adler.a % ADLER_MOD));
  for (int shift = 24; shift >= 0; shift -= 8) out[w.pos++] = (uint8_t)(sum >> shift);
  return (int64_t)w.pos;
}
