/* The ledger chain walk in native code: gateway.ledger._walk.walk().
 *
 * What it does is exactly what gateway/ledger/audit.py's Python walk does for a row it
 * finds in order, of the expected column types, hashing to its stored digest and not a
 * correction. It does that row by row through SQLite's C API and OpenSSL's SHA-256, with the
 * GIL released, and stops *before* the first row that is anything else: a seq out of order, a
 * column of another type, a digest that does not match, a correction, the end of the rows.
 * The caller then takes that one row through the Python walk, which names the problem or checks
 * the correction, and calls again from the next row. So every verdict and every message comes
 * from the one Python implementation, and this file only makes the common case fast.
 *
 * While it walks it can also sum a month (the export's cells): for each row with seq <= head and
 * minute_start in [start, end), it adds the row to the cell of its local day and its key
 * (audit.CELL_KEY_FIELDS, process ... quality, as the row stores them). Sums are kept exact, as
 * Shewchuk's non-overlapping partials (the algorithm of Python's math.fsum), so the caller's
 * math.fsum over the partials is the correctly rounded sum whatever the order and split of the
 * rows. A row that would need more partials than a cell holds, or carries a value that is not
 * finite, is left to the Python walk like any other unusual row. It also keeps the month's
 * flagged rows (quality other than "measured", or flags set) and returns them as the export's
 * records. Text that is not UTF-8 as Python reads it is left to the Python walk too.
 *
 * The row layout is the caller's SQL (gateway/ledger/audit.py, _NATIVE_WALK_SQL, built from
 * format.WALK_COLUMNS): seq, the doubles, supersedes, reason, the text fields, digest: the stored
 * columns as they are, so SQLite evaluates nothing. The hashed bytes are the text fields and
 * reason ("" for NULL) joined by U+001F, then the canonical numbers little-endian
 * (format.canonical_row), whose last two are supersedes or 0 and the presence bits. Every
 * position and size comes from _walk_layout.h, which scripts/gen_walk_layout.py generates from
 * gateway/ledger/format.py: this file restates none of them.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <sqlite3.h>
#include <stdint.h>
#include <string.h>

#include "_walk_layout.h"

#define PARTIALS 8 /* per sum; values of a few magnitudes need 2 or 3 */

/* What the code below assumes of the layout (the generator checks the runs it describes). */
_Static_assert(CANONICAL_NUMBERS_SIZE == 8 + 8 * N_DOUBLES + 8 + 1, "canonical numbers: seq, doubles, supersedes, presence");
_Static_assert(D_RECORDED_AT == N_FIELD_DOUBLES, "recorded_at is the last double, after the fields");
_Static_assert(RECORD_TEXT_FIRST >= 1 && KEY_FIRST >= RECORD_TEXT_FIRST && KEY_LAST <= RECORD_TEXT_LAST,
               "the month key lies inside the flagged record's texts, which follow the first text");
_Static_assert(T_QUALITY >= RECORD_TEXT_FIRST && T_QUALITY <= RECORD_TEXT_LAST && T_FLAGS >= RECORD_TEXT_FIRST &&
                   T_FLAGS <= RECORD_TEXT_LAST,
               "quality and flags are among the flagged record's texts");
#define RECORD_TEXTS (RECORD_TEXT_LAST - RECORD_TEXT_FIRST + 1)

/* ---- exact sums (Shewchuk; as in CPython's math.fsum) ---- */

typedef struct {
    double p[PARTIALS];
    int n;
} xsum;

static void xsum_add(xsum *s, double x) /* caller checked s->n < PARTIALS and x finite */
{
    int i = 0;
    for (int j = 0; j < s->n; j++) {
        double y = s->p[j];
        if (fabs(x) < fabs(y)) {
            double t = x;
            x = y;
            y = t;
        }
        double hi = x + y;
        double lo = y - (hi - x);
        if (lo != 0.0)
            s->p[i++] = lo;
        x = hi;
    }
    s->p[i++] = x;
    s->n = i;
}

/* ---- the month's cells ---- */

typedef struct {
    int64_t minutes, first_seq, last_seq;
    xsum co2_kg, activity, coverage;
    double ef_min, ef_max, first_s, last_s;
    int32_t day, key;
} cell;

typedef struct {
    /* interned keys: their bytes in one arena */
    char *arena;
    size_t arena_len, arena_cap;
    struct key_ref {
        size_t off, len;
        uint64_t hash;
    } *keys;
    size_t keys_cap;
    int32_t n_keys;
    int32_t *key_slots; /* open addressing: key index + 1, 0 empty */
    uint32_t key_mask;
    cell *cells;
    size_t cells_cap;
    int32_t n_cells;
    int32_t *cell_slots;
    uint32_t cell_mask;
    /* the flagged rows: numbers, and text fields process .. flags in one arena */
    struct flagged_row {
        int64_t seq;
        double d[N_FIELD_DOUBLES]; /* the REAL fields (D_*) */
        size_t text_off, text_len;
    } *flagged;
    size_t n_flagged, flagged_cap;
    char *ftext;
    size_t ftext_len, ftext_cap;
} month_acc;

/* FNV-1a over 8-byte words, then the tail: keys are 40-80 bytes of ASCII. */
static uint64_t key_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL, w;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, s + i, 8);
        h = (h ^ w) * 1099511628211ULL;
    }
    for (; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h ^ (h >> 29);
}

/* Makes *buf hold at least `need` elements of `elem` bytes, doubling its capacity *cap. */
static int grow(void **buf, size_t elem, size_t need, size_t *cap)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    void *p = realloc(*buf, c * elem);
    if (!p)
        return -1;
    *buf = p;
    *cap = c;
    return 0;
}

static int rehash_keys(month_acc *m, uint32_t size)
{
    int32_t *slots = calloc(size, sizeof *slots);
    if (!slots)
        return -1;
    for (int32_t k = 0; k < m->n_keys; k++) {
        uint32_t i = (uint32_t)m->keys[k].hash & (size - 1);
        while (slots[i])
            i = (i + 1) & (size - 1);
        slots[i] = k + 1;
    }
    free(m->key_slots);
    m->key_slots = slots;
    m->key_mask = size - 1;
    return 0;
}

static int32_t intern_key(month_acc *m, const char *s, size_t n)
{
    uint64_t h = key_hash(s, n);
    uint32_t i = (uint32_t)h & m->key_mask;
    for (int32_t k; (k = m->key_slots[i]); i = (i + 1) & m->key_mask) {
        k -= 1;
        const struct key_ref *r = &m->keys[k];
        if (r->hash == h && r->len == n && memcmp(m->arena + r->off, s, n) == 0)
            return k;
    }
    if (grow((void **)&m->keys, sizeof *m->keys, (size_t)m->n_keys + 1, &m->keys_cap) < 0 ||
        grow((void **)&m->arena, 1, m->arena_len + n, &m->arena_cap) < 0)
        return -1;
    memcpy(m->arena + m->arena_len, s, n);
    int32_t k = m->n_keys++;
    m->keys[k] = (struct key_ref){m->arena_len, n, h};
    m->arena_len += n;
    if ((uint32_t)m->n_keys * 2 > m->key_mask + 1)
        return rehash_keys(m, (m->key_mask + 1) * 2) < 0 ? -1 : k;
    m->key_slots[i] = k + 1;
    return k;
}

static uint32_t cell_hash(int32_t day, int32_t key)
{
    return (uint32_t)(((uint64_t)(uint32_t)key * 64 + (uint32_t)day) * 0x9E3779B97F4A7C15ULL >> 32);
}

static int rehash_cells(month_acc *m, uint32_t size)
{
    int32_t *slots = calloc(size, sizeof *slots);
    if (!slots)
        return -1;
    for (int32_t c = 0; c < m->n_cells; c++) {
        uint32_t i = cell_hash(m->cells[c].day, m->cells[c].key) & (size - 1);
        while (slots[i])
            i = (i + 1) & (size - 1);
        slots[i] = c + 1;
    }
    free(m->cell_slots);
    m->cell_slots = slots;
    m->cell_mask = size - 1;
    return 0;
}

static cell *find_cell(month_acc *m, int32_t day, int32_t key)
{
    uint32_t i = cell_hash(day, key) & m->cell_mask;
    for (int32_t c; (c = m->cell_slots[i]); i = (i + 1) & m->cell_mask) {
        cell *x = &m->cells[c - 1];
        if (x->day == day && x->key == key)
            return x;
    }
    if (grow((void **)&m->cells, sizeof *m->cells, (size_t)m->n_cells + 1, &m->cells_cap) < 0)
        return NULL;
    int32_t c = m->n_cells++;
    cell *x = &m->cells[c];
    memset(x, 0, sizeof *x);
    x->day = day;
    x->key = key;
    if ((uint32_t)m->n_cells * 2 > m->cell_mask + 1) {
        if (rehash_cells(m, (m->cell_mask + 1) * 2) < 0)
            return NULL;
    } else {
        m->cell_slots[i] = c + 1;
    }
    return x;
}

static void month_free(month_acc *m)
{
    free(m->arena);
    free(m->keys);
    free(m->key_slots);
    free(m->cells);
    free(m->cell_slots);
    free(m->flagged);
    free(m->ftext);
}

/* ---- the walk ---- */

typedef struct {
    /* in */
    const char *uri, *sql;
    int64_t first, last, lowest;
    unsigned char prev[32];
    unsigned char expected[32];
    int has_expected;
    int has_month;
    double start_s, end_s;
    int64_t head;
    const double *day_starts; /* n_days + 1 bounds */
    Py_ssize_t n_days;
    /* out */
    int64_t checked, found_at;
    month_acc month;
    int sqlite_rc;
    char error[512];
} walk_job;

/* The offset in the joined text where text i starts (sep_at[i] is the separator after it). */
#define TEXT_START(sep_at, i) ((i) ? (sep_at)[(i) - 1] + 1 : 0)

/* Where in the text a row's month key and fields lie: the joined text and the offsets of its
 * separators. */
static int add_to_month(walk_job *j, int64_t seq, const double *d, const char *text, const size_t *sep_at)
{
    double ms = d[D_MINUTE_START];
    if (seq > j->head || !(ms >= j->start_s && ms < j->end_s))
        return 0;
    for (int i = 0; i < N_FIELD_DOUBLES; i++)
        if (!isfinite(d[i]))
            return 1;
    /* day: the last bound <= ms */
    Py_ssize_t lo = 0, hi = j->n_days; /* day_starts[lo] <= ms < day_starts[hi] */
    while (hi - lo > 1) {
        Py_ssize_t mid = (lo + hi) / 2;
        if (j->day_starts[mid] <= ms)
            lo = mid;
        else
            hi = mid;
    }
    /* key: the texts KEY_FIRST..KEY_LAST (process .. quality). The caller splits it and the
     * flagged record's texts at U+001F, so a field holding one (append refuses it; a forged row
     * might not) is left to the Python walk and SQLite. */
    const char *key = text + TEXT_START(sep_at, KEY_FIRST);
    size_t key_n = sep_at[KEY_LAST] - TEXT_START(sep_at, KEY_FIRST);
    const char *rec = text + TEXT_START(sep_at, RECORD_TEXT_FIRST), *rec_end = text + sep_at[RECORD_TEXT_LAST];
    int seps = 0;
    for (const char *q = rec; (q = memchr(q, SEP, (size_t)(rec_end - q))) != NULL; q++)
        seps++;
    if (seps != RECORD_TEXTS - 1)
        return 1;
    month_acc *m = &j->month;
    int32_t k = intern_key(m, key, key_n);
    if (k < 0)
        return -1;
    cell *c = find_cell(m, (int32_t)lo, k);
    if (!c)
        return -1;
    if (c->co2_kg.n >= PARTIALS || c->activity.n >= PARTIALS || c->coverage.n >= PARTIALS)
        return 1;
    double activity = d[D_ACTIVITY], co2 = d[D_CO2_KG], ef = d[D_EF_KG_PER_UNIT], coverage = d[D_COVERAGE];
    xsum_add(&c->co2_kg, co2);
    xsum_add(&c->activity, activity);
    xsum_add(&c->coverage, coverage);
    if (c->minutes == 0) {
        c->ef_min = c->ef_max = ef;
        c->first_s = c->last_s = ms;
        c->first_seq = c->last_seq = seq;
    } else {
        c->ef_min = fmin(c->ef_min, ef);
        c->ef_max = fmax(c->ef_max, ef);
        c->first_s = fmin(c->first_s, ms);
        c->last_s = fmax(c->last_s, ms);
        c->first_seq = seq < c->first_seq ? seq : c->first_seq;
        c->last_seq = seq > c->last_seq ? seq : c->last_seq;
    }
    c->minutes += 1;
    /* flagged: quality is not QUALITY_MEASURED, or flags is not empty */
    const char *quality = text + TEXT_START(sep_at, T_QUALITY);
    size_t quality_n = sep_at[T_QUALITY] - TEXT_START(sep_at, T_QUALITY);
    int flags_set = sep_at[T_FLAGS] > TEXT_START(sep_at, T_FLAGS);
    size_t measured_n = sizeof QUALITY_MEASURED - 1;
    if (flags_set || quality_n != measured_n || memcmp(quality, QUALITY_MEASURED, measured_n) != 0) {
        const char *ftext = rec; /* the record's texts: no separator inside a field (checked above) */
        size_t ftext_n = (size_t)(rec_end - rec);
        if (grow((void **)&m->flagged, sizeof *m->flagged, m->n_flagged + 1, &m->flagged_cap) < 0 ||
            grow((void **)&m->ftext, 1, m->ftext_len + ftext_n, &m->ftext_cap) < 0)
            return -1;
        memcpy(m->ftext + m->ftext_len, ftext, ftext_n);
        struct flagged_row *f = &m->flagged[m->n_flagged++];
        f->seq = seq;
        memcpy(f->d, d, sizeof f->d);
        f->text_off = m->ftext_len;
        f->text_len = ftext_n;
        m->ftext_len += ftext_n;
    }
    return 0;
}

/* SHA-256 of one row's bytes. OpenSSL 3 deprecates its SHA256_* calls for EVP, but they skip
 * EVP's per-call provider dispatch, which measured 10-25 % of the whole walk for inputs this
 * short; EVP is the way where an OpenSSL is built without them. */
static int sha256(EVP_MD_CTX *ctx, const EVP_MD *md, const unsigned char *in, size_t n, unsigned char out[32])
{
#ifndef OPENSSL_NO_DEPRECATED_3_0
    (void)ctx;
    (void)md;
    SHA256_CTX c;
    return SHA256_Init(&c) && SHA256_Update(&c, in, n) && SHA256_Final(out, &c);
#else
    unsigned int len = 0;
    return EVP_DigestInit_ex2(ctx, md, NULL) && EVP_DigestUpdate(ctx, in, n) && EVP_DigestFinal_ex(ctx, out, &len);
#endif
}

/* Whether s is UTF-8 as Python's strict decoder takes it (no overlong forms, no surrogates,
 * nothing above U+10FFFF): the Python walk cannot read a row that is not, so neither passes one
 * here. ASCII, the usual case, is checked 8 bytes at a time. */
static int utf8_ok(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint64_t w;
        if (i + 8 <= n) {
            memcpy(&w, s + i, 8);
            if (!(w & 0x8080808080808080ULL)) {
                i += 8;
                continue;
            }
        }
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (i + len > n)
            return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF)))
            return 0;
        if (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))
            return 0;
        i += len;
    }
    return 1;
}

static void put_le64(unsigned char *p, uint64_t v)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(p, &v, 8);
#else
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
#endif
}

/* Runs without the GIL. Returns 0 (stopped before row checked + 1, or reached last), or -1 with
 * j->error set. */
static int run_walk(walk_job *j)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_MD *md = EVP_MD_fetch(NULL, "SHA256", NULL);
    unsigned char *buf = NULL;
    size_t buf_cap = 0;
    int rc = -1;
    j->checked = j->first - 1;
    j->found_at = 0;
    if (!ctx || !md) {
        snprintf(j->error, sizeof j->error, "OpenSSL has no SHA-256");
        goto done;
    }
    if (j->has_month) {
        month_acc *m = &j->month;
        m->key_slots = calloc(1024, sizeof *m->key_slots);
        m->key_mask = 1023;
        m->cell_slots = calloc(4096, sizeof *m->cell_slots);
        m->cell_mask = 4095;
        if (!m->key_slots || !m->cell_slots) {
            snprintf(j->error, sizeof j->error, "out of memory");
            goto done;
        }
    }
    int src = sqlite3_open_v2(j->uri, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX, NULL);
    if (src == SQLITE_OK)
        src = sqlite3_busy_timeout(db, 5000);
    if (src == SQLITE_OK) /* pages read in place from the file cache instead of copied: a few per cent */
        src = sqlite3_exec(db, "PRAGMA mmap_size = 1099511627776", NULL, NULL, NULL);
    if (src == SQLITE_OK)
        src = sqlite3_prepare_v2(db, j->sql, -1, &st, NULL);
    if (src == SQLITE_OK)
        src = sqlite3_bind_int64(st, 1, j->lowest);
    if (src != SQLITE_OK) {
        j->sqlite_rc = src;
        snprintf(j->error, sizeof j->error, "%s", db ? sqlite3_errmsg(db) : sqlite3_errstr(src));
        goto done;
    }
    if (sqlite3_column_count(st) != N_COLS) {
        snprintf(j->error, sizeof j->error, "the walk's SQL returns %d columns, not %d", sqlite3_column_count(st), N_COLS);
        goto done;
    }
    unsigned char *prev = j->prev;
    while (j->checked < j->last) {
        src = sqlite3_step(st);
        if (src == SQLITE_DONE)
            break;
        if (src != SQLITE_ROW) {
            j->sqlite_rc = src;
            snprintf(j->error, sizeof j->error, "%s", sqlite3_errmsg(db));
            goto done;
        }
        /* One sqlite3_column_value per column: the value's own accessors skip the statement's
         * checks that every sqlite3_column_* call makes again (a third of the walk's time). */
        sqlite3_value *v[N_COLS];
        for (int i = 0; i < N_COLS; i++)
            v[i] = sqlite3_column_value(st, i);
        int64_t n = j->checked + 1;
        if (sqlite3_value_type(v[COL_SEQ]) != SQLITE_INTEGER || sqlite3_value_int64(v[COL_SEQ]) != n)
            break;
        if (sqlite3_value_type(v[COL_SUPERSEDES]) != SQLITE_NULL)
            break; /* a correction (the Python walk checks what it supersedes), or not even a number */
        int reason_type = sqlite3_value_type(v[COL_REASON]);
        if (reason_type != SQLITE_NULL && reason_type != SQLITE_TEXT)
            break;
        const int64_t supersedes = 0;
        const int presence = reason_type == SQLITE_TEXT ? PRESENCE_REASON : 0;
        double d[N_DOUBLES];
        int ok = 1;
        for (int i = 0; i < N_DOUBLES && ok; i++) {
            ok = sqlite3_value_type(v[COL_DOUBLE + i]) == SQLITE_FLOAT;
            d[i] = sqlite3_value_double(v[COL_DOUBLE + i]);
        }
        if (!ok || sqlite3_value_type(v[COL_DIGEST]) != SQLITE_BLOB || sqlite3_value_bytes(v[COL_DIGEST]) != 32)
            break;
        /* the canonical bytes: the texts joined by U+001F, then the canonical numbers */
        size_t need = N_TEXT + CANONICAL_NUMBERS_SIZE, len[N_TEXT];
        const unsigned char *txt[N_TEXT];
        for (int i = 0; i < N_TEXT && ok; i++) {
            sqlite3_value *t = i < N_TEXT - 1 ? v[COL_TEXT + i] : v[COL_REASON];
            if (i == N_TEXT - 1 && !presence) {
                txt[i] = (const unsigned char *)"";
                len[i] = 0;
                continue;
            }
            ok = sqlite3_value_type(t) == SQLITE_TEXT;
            txt[i] = sqlite3_value_text(t);
            len[i] = (size_t)sqlite3_value_bytes(t);
            need += len[i];
        }
        if (!ok)
            break;
        if (grow((void **)&buf, 1, need + 32, &buf_cap) < 0) {
            snprintf(j->error, sizeof j->error, "out of memory");
            goto done;
        }
        unsigned char *p = buf + 32; /* the previous hash goes first */
        size_t sep_at[N_TEXT];       /* offsets of the separators (after field i) in the text */
        for (int i = 0; i < N_TEXT; i++) {
            if (i) {
                sep_at[i - 1] = (size_t)(p - buf - 32);
                *p++ = SEP;
            }
            if (len[i])
                memcpy(p, txt[i], len[i]);
            p += len[i];
        }
        sep_at[N_TEXT - 1] = (size_t)(p - buf - 32);
        const char *text = (const char *)buf + 32;
        if (!utf8_ok(buf + 32, sep_at[N_TEXT - 1]))
            break;
        put_le64(p, (uint64_t)n);
        p += 8;
        for (int i = 0; i < N_DOUBLES; i++) {
            uint64_t bits;
            memcpy(&bits, &d[i], 8);
            put_le64(p, bits);
            p += 8;
        }
        put_le64(p, (uint64_t)supersedes);
        p += 8;
        *p++ = (unsigned char)presence;
        memcpy(buf, prev, 32);
        unsigned char h[32];
        if (!sha256(ctx, md, buf, (size_t)(p - buf), h)) {
            snprintf(j->error, sizeof j->error, "OpenSSL SHA-256 failed");
            goto done;
        }
        const void *digest = sqlite3_value_blob(v[COL_DIGEST]);
        if (memcmp(h, digest, 32) != 0)
            break;
        if (j->has_month) {
            int r = add_to_month(j, n, d, text, sep_at);
            if (r < 0) {
                snprintf(j->error, sizeof j->error, "out of memory");
                goto done;
            }
            if (r > 0)
                break; /* not summable here; the Python walk takes the row */
        }
        memcpy(prev, h, 32);
        j->checked = n;
        if (j->has_expected && !j->found_at && memcmp(h, j->expected, 32) == 0)
            j->found_at = n;
    }
    rc = 0;
done:
    free(buf);
    sqlite3_finalize(st);
    sqlite3_close_v2(db);
    EVP_MD_free(md);
    EVP_MD_CTX_free(ctx);
    return rc;
}

static PyObject *xsum_tuple(const xsum *s)
{
    PyObject *t = PyTuple_New(s->n);
    if (!t)
        return NULL;
    for (int i = 0; i < s->n; i++) {
        PyObject *f = PyFloat_FromDouble(s->p[i]);
        if (!f) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, f);
    }
    return t;
}

static PyObject *month_result(const month_acc *m)
{
    PyObject *cells = PyList_New(m->n_cells);
    if (!cells)
        return NULL;
    for (int32_t i = 0; i < m->n_cells; i++) {
        const cell *c = &m->cells[i];
        PyObject *co2 = xsum_tuple(&c->co2_kg), *act = xsum_tuple(&c->activity), *cov = xsum_tuple(&c->coverage);
        PyObject *item = NULL;
        if (co2 && act && cov)
            item = Py_BuildValue(
                "(is#LOOOddddLL)",
                c->day,
                m->arena + m->keys[c->key].off,
                (Py_ssize_t)m->keys[c->key].len,
                (long long)c->minutes,
                co2,
                act,
                cov,
                c->ef_min,
                c->ef_max,
                c->first_s,
                c->last_s,
                (long long)c->first_seq,
                (long long)c->last_seq);
        Py_XDECREF(co2);
        Py_XDECREF(act);
        Py_XDECREF(cov);
        if (!item) {
            Py_DECREF(cells);
            return NULL;
        }
        PyList_SET_ITEM(cells, i, item);
    }
    PyObject *flagged = PyList_New((Py_ssize_t)m->n_flagged);
    if (!flagged) {
        Py_DECREF(cells);
        return NULL;
    }
    for (size_t i = 0; i < m->n_flagged; i++) {
        const struct flagged_row *f = &m->flagged[i];
        const char *t[RECORD_TEXTS]; /* the texts RECORD_TEXT_FIRST..RECORD_TEXT_LAST */
        Py_ssize_t n[RECORD_TEXTS];
        const char *p = m->ftext + f->text_off, *end = p + f->text_len;
        for (int k = 0; k < RECORD_TEXTS; k++) {
            const char *q = k < RECORD_TEXTS - 1 ? memchr(p, SEP, (size_t)(end - p)) : end;
            t[k] = p;
            n[k] = q - p;
            p = q + 1;
        }
        /* audit.FLAGGED_RECORD_FIELDS: seq, then the fields but the site */
        PyObject *rec = Py_BuildValue(RECORD_FORMAT, RECORD_ARGS(f->seq, f->d, t, n));
        if (!rec) {
            Py_DECREF(cells);
            Py_DECREF(flagged);
            return NULL;
        }
        PyList_SET_ITEM(flagged, (Py_ssize_t)i, rec);
    }
    return Py_BuildValue("(NN)", cells, flagged);
}

static PyObject *raise_sqlite(int rc, const char *msg)
{
    PyObject *mod = PyImport_ImportModule("sqlite3");
    PyObject *exc = mod ? PyObject_GetAttrString(mod, rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB ? "DatabaseError" : "OperationalError") : NULL;
    Py_XDECREF(mod);
    if (exc) {
        PyErr_SetString(exc, msg);
        Py_DECREF(exc);
    }
    return NULL;
}

PyDoc_STRVAR(walk_doc,
             "walk(uri, sql, first, last, lowest, prev, expected, month) -> (checked, prev, found_at, month_sums)\n\n"
             "Check the rows at positions first..last of the ledger opened read-only at `uri` (a file: URI), read\n"
             "with `sql` bound to `lowest`, after the row whose digest is `prev`; stop before the first row that\n"
             "needs the Python walk. `checked` is the last row found good (first - 1 for none), `prev` its digest,\n"
             "`found_at` the first row whose digest is `expected` (32 bytes or None) or None. `month` is None or\n"
             "(start_s, end_s, head, day_starts) with day_starts the float64 bytes of the day bounds; then\n"
             "`month_sums` is (cells, flagged records in audit.FLAGGED_RECORD_FIELDS order), each cell (day, key, minutes, co2_kg partials,\n"
             "activity partials, coverage partials, ef_min, ef_max, first_s, last_s, first_seq, last_seq).\n"
             "Raises sqlite3.Error when the file cannot be read.");

static PyObject *walk(PyObject *self, PyObject *args)
{
    (void)self;
    walk_job j;
    memset(&j, 0, sizeof j);
    const char *prev;
    Py_ssize_t prev_len;
    PyObject *expected, *month;
    if (!PyArg_ParseTuple(args, "ssLLLy#OO:walk", &j.uri, &j.sql, &j.first, &j.last, &j.lowest, &prev, &prev_len, &expected, &month))
        return NULL;
    if (prev_len != 32) {
        PyErr_SetString(PyExc_ValueError, "prev must be 32 bytes");
        return NULL;
    }
    memcpy(j.prev, prev, 32);
    if (expected != Py_None) {
        char *e;
        Py_ssize_t e_len;
        if (PyBytes_AsStringAndSize(expected, &e, &e_len) < 0)
            return NULL;
        if (e_len == 32) { /* any other length never matches a digest */
            memcpy(j.expected, e, 32);
            j.has_expected = 1;
        }
    }
    Py_buffer bounds = {0};
    if (month != Py_None) {
        if (!PyArg_ParseTuple(month, "ddLy*:month", &j.start_s, &j.end_s, &j.head, &bounds))
            return NULL;
        if (bounds.len < 2 * (Py_ssize_t)sizeof(double) || bounds.len % sizeof(double)) {
            PyBuffer_Release(&bounds);
            PyErr_SetString(PyExc_ValueError, "day_starts must hold two or more float64 bounds");
            return NULL;
        }
        j.has_month = 1;
        j.day_starts = bounds.buf;
        j.n_days = bounds.len / (Py_ssize_t)sizeof(double) - 1;
    }
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = run_walk(&j);
    Py_END_ALLOW_THREADS
    if (month != Py_None)
        PyBuffer_Release(&bounds);
    PyObject *out = NULL;
    if (rc < 0) {
        if (j.sqlite_rc)
            raise_sqlite(j.sqlite_rc, j.error);
        else
            PyErr_SetString(PyExc_MemoryError, j.error);
    } else {
        PyObject *sums = j.has_month ? month_result(&j.month) : Py_NewRef(Py_None);
        if (sums) {
            PyObject *found = j.found_at ? PyLong_FromLongLong(j.found_at) : Py_NewRef(Py_None);
            out = found ? Py_BuildValue("(Ly#NN)", (long long)j.checked, (const char *)j.prev, (Py_ssize_t)32, found, sums) : NULL;
            if (!out && found == NULL)
                Py_DECREF(sums);
        }
    }
    month_free(&j.month);
    return out;
}

static PyMethodDef methods[] = {
    {"walk", walk, METH_VARARGS, walk_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "_walk",
    "The ledger chain walk in native code; see gateway/ledger/_walk.c.",
    -1,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__walk(void)
{
    return PyModule_Create(&module);
}
