// The page layout of an encrypted database: see docs/decisions/0029-encrypted-replica.md.
//
// Every page of the database file, and the page inside every frame of its write-ahead log, is sealed
// by the Swift side's authenticated cipher; the last KT_CIPHER_RESERVE bytes of the page (reserved by
// SQLite for exactly such use) hold the nonce and the tag. Frame headers and the WAL header stay as
// SQLite wrote them: they hold page numbers, salts and checksums, no content. Rollback journals and
// temporary files are refused rather than written in clear text: an encrypted replica runs in WAL
// mode with temp_store=MEMORY, so SQLite never needs them.
#include "kt_cipher_vfs.h"
#include <string.h>

#define PAGE KT_CIPHER_PAGE_SIZE
#define WAL_HEADER 32
#define FRAME_HEADER 24
#define FRAME (FRAME_HEADER + PAGE)

typedef struct {
    sqlite3_file base;
    sqlite3_file *real;       // the underlying VFS's file, allocated right after this struct
    void *key;                // retained by `acquire`, released on close
    int place;                // KT_CIPHER_DATABASE_PAGE or KT_CIPHER_WAL_FRAME
    unsigned char *scratch;   // one page, for sealing before a write and for partial reads
} KtFile;

static sqlite3_vfs *realVfs;
static kt_cipher_callbacks callbacks;
static sqlite3_vfs cipherVfs;
static const sqlite3_io_methods cipherMethods;

static int isZero(const unsigned char *bytes, int count) {
    for (int i = 0; i < count; i++) if (bytes[i]) return 0;
    return 1;
}

/// Checks and decrypts one page in place. A page of zeros was never written (a read past the end of
/// the file, which SQLite reports as a short read) and stays zeros.
static int openPage(KtFile *p, uint32_t number, unsigned char *page) {
    if (isZero(page, PAGE)) return SQLITE_OK;
    return callbacks.open(p->key, p->place, number, page, PAGE) == 0 ? SQLITE_OK : SQLITE_IOERR_DATA;
}

static int sealPage(KtFile *p, uint32_t number, unsigned char *page) {
    return callbacks.seal(p->key, p->place, number, page, PAGE) == 0 ? SQLITE_OK : SQLITE_IOERR_WRITE;
}

// MARK: The database file: pages of PAGE bytes, page n at offset (n - 1) * PAGE.

static int readDatabase(KtFile *p, unsigned char *out, int amount, sqlite3_int64 offset) {
    if (offset % PAGE == 0 && amount % PAGE == 0) {
        int rc = p->real->pMethods->xRead(p->real, out, amount, offset);
        if (rc != SQLITE_OK && rc != SQLITE_IOERR_SHORT_READ) return rc;
        for (int i = 0; i < amount / PAGE; i++) {
            int opened = openPage(p, (uint32_t)(offset / PAGE + i + 1), out + (sqlite3_int64)i * PAGE);
            if (opened != SQLITE_OK) return opened;
        }
        return rc;
    }
    // Part of a page (SQLite reads the 100-byte header first): open the whole page aside, copy the part.
    int shortRead = 0;
    sqlite3_int64 end = offset + amount;
    for (sqlite3_int64 page = offset / PAGE; page * PAGE < end; page++) {
        int rc = p->real->pMethods->xRead(p->real, p->scratch, PAGE, page * PAGE);
        if (rc == SQLITE_IOERR_SHORT_READ) shortRead = 1;
        else if (rc != SQLITE_OK) return rc;
        int opened = openPage(p, (uint32_t)(page + 1), p->scratch);
        if (opened != SQLITE_OK) return opened;
        sqlite3_int64 from = page * PAGE > offset ? page * PAGE : offset;
        sqlite3_int64 to = (page + 1) * PAGE < end ? (page + 1) * PAGE : end;
        memcpy(out + (from - offset), p->scratch + (from - page * PAGE), (size_t)(to - from));
    }
    return shortRead ? SQLITE_IOERR_SHORT_READ : SQLITE_OK;
}

static int writeDatabase(KtFile *p, const unsigned char *in, int amount, sqlite3_int64 offset) {
    if (offset % PAGE != 0 || amount % PAGE != 0) return SQLITE_IOERR_WRITE;  // SQLite writes whole pages
    for (int i = 0; i < amount / PAGE; i++) {
        const unsigned char *page = in + (sqlite3_int64)i * PAGE;
        uint32_t number = (uint32_t)(offset / PAGE + i + 1);
        // Page 1 holds the header: a database of another page size, or without room for nonce and
        // tag, would have its pages' last bytes overwritten. Refuse it rather than damage it.
        if (number == 1 && (page[16] != (PAGE >> 8) || page[17] != (PAGE & 0xFF) || page[20] < KT_CIPHER_RESERVE))
            return SQLITE_IOERR_WRITE;
        memcpy(p->scratch, page, PAGE);
        int rc = sealPage(p, number, p->scratch);
        if (rc == SQLITE_OK) rc = p->real->pMethods->xWrite(p->real, p->scratch, PAGE, offset + (sqlite3_int64)i * PAGE);
        if (rc != SQLITE_OK) return rc;
    }
    return SQLITE_OK;
}

// MARK: The write-ahead log: a 32-byte header, then frames of a 24-byte header and one page.

/// The offset of frame `index`'s page (frames counted from 0).
static sqlite3_int64 framePage(sqlite3_int64 index) { return WAL_HEADER + index * FRAME + FRAME_HEADER; }

/// The first frame whose page may end after `offset`.
static sqlite3_int64 firstFrame(sqlite3_int64 offset) { return offset < WAL_HEADER ? 0 : (offset - WAL_HEADER) / FRAME; }

static int readWAL(KtFile *p, unsigned char *out, int amount, sqlite3_int64 offset) {
    int rc = p->real->pMethods->xRead(p->real, out, amount, offset);
    if (rc != SQLITE_OK && rc != SQLITE_IOERR_SHORT_READ) return rc;
    sqlite3_int64 end = offset + amount;
    for (sqlite3_int64 frame = firstFrame(offset); framePage(frame) < end; frame++) {
        sqlite3_int64 start = framePage(frame), stop = start + PAGE;
        if (stop <= offset) continue;
        if (start >= offset && stop <= end) {
            int opened = openPage(p, (uint32_t)frame, out + (start - offset));
            if (opened != SQLITE_OK) return opened;
            continue;
        }
        // Part of a frame's page: open the whole page aside, copy the part.
        int partRC = p->real->pMethods->xRead(p->real, p->scratch, PAGE, start);
        if (partRC != SQLITE_OK && partRC != SQLITE_IOERR_SHORT_READ) return partRC;
        int opened = openPage(p, (uint32_t)frame, p->scratch);
        if (opened != SQLITE_OK) return opened;
        sqlite3_int64 from = start > offset ? start : offset;
        sqlite3_int64 to = stop < end ? stop : end;
        memcpy(out + (from - offset), p->scratch + (from - start), (size_t)(to - from));
    }
    return rc;
}

static int writeWAL(KtFile *p, const unsigned char *in, int amount, sqlite3_int64 offset) {
    sqlite3_int64 end = offset + amount;
    unsigned char *copy = NULL;
    for (sqlite3_int64 frame = firstFrame(offset); framePage(frame) < end; frame++) {
        sqlite3_int64 start = framePage(frame), stop = start + PAGE;
        if (stop <= offset) continue;
        // SQLite writes a frame's page whole (header and page apart, or both at once); a write of a
        // part of one cannot be sealed.
        if (start < offset || stop > end) {
            if (copy != p->scratch) sqlite3_free(copy);  // the scratch page is the file's, freed on close
            return SQLITE_IOERR_WRITE;
        }
        if (!copy) {
            copy = amount <= PAGE ? p->scratch : sqlite3_malloc(amount);
            if (!copy) return SQLITE_IOERR_NOMEM;
            memcpy(copy, in, (size_t)amount);
        }
        int rc = sealPage(p, (uint32_t)frame, copy + (start - offset));
        if (rc != SQLITE_OK) { if (copy != p->scratch) sqlite3_free(copy); return rc; }
    }
    int rc = p->real->pMethods->xWrite(p->real, copy ? copy : in, amount, offset);
    if (copy && copy != p->scratch) sqlite3_free(copy);
    return rc;
}

// MARK: io methods

static int cipherClose(sqlite3_file *file) {
    KtFile *p = (KtFile *)file;
    int rc = p->real->pMethods ? p->real->pMethods->xClose(p->real) : SQLITE_OK;
    if (p->key) callbacks.release(p->key);
    sqlite3_free(p->scratch);
    p->key = NULL;
    p->scratch = NULL;
    return rc;
}

static int cipherRead(sqlite3_file *file, void *out, int amount, sqlite3_int64 offset) {
    KtFile *p = (KtFile *)file;
    return p->place == KT_CIPHER_DATABASE_PAGE ? readDatabase(p, out, amount, offset) : readWAL(p, out, amount, offset);
}

static int cipherWrite(sqlite3_file *file, const void *in, int amount, sqlite3_int64 offset) {
    KtFile *p = (KtFile *)file;
    return p->place == KT_CIPHER_DATABASE_PAGE ? writeDatabase(p, in, amount, offset) : writeWAL(p, in, amount, offset);
}

#define REAL(file) (((KtFile *)(file))->real)
static int cipherTruncate(sqlite3_file *f, sqlite3_int64 size) { return REAL(f)->pMethods->xTruncate(REAL(f), size); }
static int cipherSync(sqlite3_file *f, int flags) { return REAL(f)->pMethods->xSync(REAL(f), flags); }
static int cipherFileSize(sqlite3_file *f, sqlite3_int64 *size) { return REAL(f)->pMethods->xFileSize(REAL(f), size); }
static int cipherLock(sqlite3_file *f, int level) { return REAL(f)->pMethods->xLock(REAL(f), level); }
static int cipherUnlock(sqlite3_file *f, int level) { return REAL(f)->pMethods->xUnlock(REAL(f), level); }
static int cipherCheckReservedLock(sqlite3_file *f, int *out) { return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out); }
static int cipherFileControl(sqlite3_file *f, int op, void *arg) { return REAL(f)->pMethods->xFileControl(REAL(f), op, arg); }
static int cipherSectorSize(sqlite3_file *f) { return REAL(f)->pMethods->xSectorSize(REAL(f)); }
static int cipherDeviceCharacteristics(sqlite3_file *f) { return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f)); }
static int cipherShmMap(sqlite3_file *f, int page, int size, int extend, void volatile **out) {
    return REAL(f)->pMethods->xShmMap(REAL(f), page, size, extend, out);
}
static int cipherShmLock(sqlite3_file *f, int offset, int n, int flags) { return REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags); }
static void cipherShmBarrier(sqlite3_file *f) { REAL(f)->pMethods->xShmBarrier(REAL(f)); }
static int cipherShmUnmap(sqlite3_file *f, int deleteFlag) { return REAL(f)->pMethods->xShmUnmap(REAL(f), deleteFlag); }
// Memory-mapped reads would hand SQLite the sealed pages: never map.
static int cipherFetch(sqlite3_file *f, sqlite3_int64 offset, int amount, void **out) { (void)f; (void)offset; (void)amount; *out = 0; return SQLITE_OK; }
static int cipherUnfetch(sqlite3_file *f, sqlite3_int64 offset, void *page) { (void)f; (void)offset; (void)page; return SQLITE_OK; }

static const sqlite3_io_methods cipherMethods = {
    3, cipherClose, cipherRead, cipherWrite, cipherTruncate, cipherSync, cipherFileSize, cipherLock, cipherUnlock,
    cipherCheckReservedLock, cipherFileControl, cipherSectorSize, cipherDeviceCharacteristics,
    cipherShmMap, cipherShmLock, cipherShmBarrier, cipherShmUnmap, cipherFetch, cipherUnfetch,
};

// MARK: The VFS: opens files through the default VFS; everything else is the default VFS's.

static int cipherOpen(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *file, int flags, int *outFlags) {
    (void)vfs;
    KtFile *p = (KtFile *)file;
    memset(p, 0, sizeof(KtFile));
    p->real = (sqlite3_file *)&p[1];
    if (flags & SQLITE_OPEN_MAIN_DB) p->place = KT_CIPHER_DATABASE_PAGE;
    else if (flags & SQLITE_OPEN_WAL) p->place = KT_CIPHER_WAL_FRAME;
    else return SQLITE_CANTOPEN;  // a journal or temporary file would hold pages in clear text
    const char *keyID = name ? sqlite3_uri_parameter(name, "ktkey") : NULL;
    p->key = keyID ? callbacks.acquire(keyID) : NULL;
    if (!p->key) return SQLITE_AUTH;
    p->scratch = sqlite3_malloc(PAGE);
    if (!p->scratch) { callbacks.release(p->key); p->key = NULL; return SQLITE_NOMEM; }
    int rc = realVfs->xOpen(realVfs, name, p->real, flags, outFlags);
    if (p->real->pMethods) {
        p->base.pMethods = &cipherMethods;  // SQLite calls xClose even when xOpen failed half-way
    } else {
        callbacks.release(p->key);
        sqlite3_free(p->scratch);
        p->key = NULL;
        p->scratch = NULL;
    }
    return rc;
}

static int cipherDelete(sqlite3_vfs *v, const char *name, int syncDir) { (void)v; return realVfs->xDelete(realVfs, name, syncDir); }
static int cipherAccess(sqlite3_vfs *v, const char *name, int flags, int *out) { (void)v; return realVfs->xAccess(realVfs, name, flags, out); }
static int cipherFullPathname(sqlite3_vfs *v, const char *name, int n, char *out) { (void)v; return realVfs->xFullPathname(realVfs, name, n, out); }
static void *cipherDlOpen(sqlite3_vfs *v, const char *path) { (void)v; return realVfs->xDlOpen(realVfs, path); }
static void cipherDlError(sqlite3_vfs *v, int n, char *out) { (void)v; realVfs->xDlError(realVfs, n, out); }
static void (*cipherDlSym(sqlite3_vfs *v, void *lib, const char *symbol))(void) { (void)v; return realVfs->xDlSym(realVfs, lib, symbol); }
static void cipherDlClose(sqlite3_vfs *v, void *lib) { (void)v; realVfs->xDlClose(realVfs, lib); }
static int cipherRandomness(sqlite3_vfs *v, int n, char *out) { (void)v; return realVfs->xRandomness(realVfs, n, out); }
static int cipherSleep(sqlite3_vfs *v, int micros) { (void)v; return realVfs->xSleep(realVfs, micros); }
static int cipherCurrentTime(sqlite3_vfs *v, double *out) { (void)v; return realVfs->xCurrentTime(realVfs, out); }
static int cipherGetLastError(sqlite3_vfs *v, int n, char *out) { (void)v; return realVfs->xGetLastError(realVfs, n, out); }
static int cipherCurrentTimeInt64(sqlite3_vfs *v, sqlite3_int64 *out) { (void)v; return realVfs->xCurrentTimeInt64(realVfs, out); }

int kt_cipher_vfs_register(kt_cipher_callbacks given) {
    if (realVfs) return SQLITE_OK;
    sqlite3_vfs *found = sqlite3_vfs_find(NULL);
    if (!found) return SQLITE_ERROR;
    callbacks = given;
    cipherVfs = (sqlite3_vfs){
        2, (int)sizeof(KtFile) + found->szOsFile, found->mxPathname, NULL, KT_CIPHER_VFS_NAME, NULL,
        cipherOpen, cipherDelete, cipherAccess, cipherFullPathname, cipherDlOpen, cipherDlError, cipherDlSym,
        cipherDlClose, cipherRandomness, cipherSleep, cipherCurrentTime, cipherGetLastError, cipherCurrentTimeInt64,
        NULL, NULL, NULL,
    };
    realVfs = found;
    return sqlite3_vfs_register(&cipherVfs, 0);
}

int kt_cipher_reserve_bytes(sqlite3 *db, int bytes) {
    return sqlite3_file_control(db, "main", SQLITE_FCNTL_RESERVE_BYTES, &bytes);
}
