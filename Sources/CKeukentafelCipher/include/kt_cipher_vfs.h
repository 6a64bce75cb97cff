#ifndef KT_CIPHER_VFS_H
#define KT_CIPHER_VFS_H

#include <sqlite3.h>
#include <stdint.h>

// A VFS shim that encrypts every page of a database file and of its write-ahead log.
// The cipher itself lives in Swift (KeukentafelSQLite/Cipher); this file only knows where pages are.
// See docs/decisions/0029-encrypted-replica.md for the layout.

/// Bytes at the end of every page that hold the cipher's nonce (12) and tag (16). The database must
/// be created with at least this many reserved bytes per page (SQLITE_FCNTL_RESERVE_BYTES).
#define KT_CIPHER_RESERVE 28
/// The only page size an encrypted database uses: the VFS must know it before it can read page 1.
#define KT_CIPHER_PAGE_SIZE 4096
/// The VFS's name, for sqlite3_open_v2.
#define KT_CIPHER_VFS_NAME "keukentafel-cipher"

/// Where a page lives, bound into its authentication tag so that a page cannot be moved.
typedef enum { KT_CIPHER_DATABASE_PAGE = 1, KT_CIPHER_WAL_FRAME = 2 } kt_cipher_place;

typedef struct {
    /// The key for a database opened with the URI parameter `ktkey=ID`, retained; NULL if none.
    void *(*acquire)(const char *keyID);
    void (*release)(void *key);
    /// Encrypts `page[0 ..< size - KT_CIPHER_RESERVE]` in place and writes nonce and tag into the rest.
    int (*seal)(void *key, int place, uint32_t number, unsigned char *page, int size);
    /// Checks and decrypts a page sealed by `seal`, in place; nonzero if it fails authentication.
    int (*open)(void *key, int place, uint32_t number, unsigned char *page, int size);
} kt_cipher_callbacks;

/// Registers the VFS (once; later calls return SQLITE_OK and change nothing).
int kt_cipher_vfs_register(kt_cipher_callbacks callbacks);

/// Sets a database's reserved bytes per page; only works while it is still empty.
int kt_cipher_reserve_bytes(sqlite3 *db, int bytes);

#endif
