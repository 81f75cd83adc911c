/* fsutil.h — small file-system helpers for atomic outputs (kept apart from files that include
 * nifti1.h, whose DT_* datatype macros collide with <dirent.h>'s). */
#ifndef UNET_FSUTIL_H
#define UNET_FSUTIL_H

/* mkdir -p: creates dir and any missing parents; 0 or -1 (errno set). */
int fsu_mkdir_p(const char *dir);
/* Creates the missing parent directories of path (not path itself); 0 or -1 (errno set). */
int fsu_mkdir_parents(const char *path);
/* fsync a file or a directory by path; 0 or -1 (errno set). */
int fsu_fsync_path(const char *path, int is_dir);
/* Removes the plain files directly inside dir, then dir itself (not recursive: a directory
 * holding anything else survives). 0 when dir is gone or never existed. */
int fsu_rm_dir_files(const char *dir);

#endif

#ifndef UNET_FSUTIL_LIST
#define UNET_FSUTIL_LIST
/* Names in dir (not . or ..), sorted; *n set. NULL (and *n = -1) if dir cannot be read.
 * Free with fsu_free_list. */
char **fsu_list(const char *dir, int *n);
void fsu_free_list(char **names, int n);
#endif
