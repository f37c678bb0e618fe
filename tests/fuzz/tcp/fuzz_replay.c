/*
 * fuzz_replay.c - run saved fuzz inputs through a libFuzzer target without
 *	libFuzzer, so the normal build and test suite replay the corpus.
 *
 * SYNOPSIS
 *	replay_X PATH...     (each PATH a file or a directory of files)
 *
 * DESCRIPTION
 *	Calls LLVMFuzzerInitialize() once, then LLVMFuzzerTestOneInput() on
 *	every file, in name order within a directory. A crash or abort is the
 *	failure; otherwise it prints how many inputs ran and exits 0. An empty
 *	or missing corpus is an error: a replay that runs nothing proves nothing.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long len;

	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) != 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	buf = malloc(len > 0 ? (size_t)len : 1);
	if (buf == NULL || fread(buf, 1, (size_t)len, f) != (size_t)len) {
		fprintf(stderr, "replay: %s: read error\n", path);
		exit(1);
	}
	fclose(f);
	LLVMFuzzerTestOneInput(buf, (size_t)len);
	free(buf);
	return 1;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

int main(int argc, char **argv)
{
	int n = 0;

	LLVMFuzzerInitialize(&argc, &argv);
	for (int i = 1; i < argc; i++) {
		struct stat st;
		struct dirent **ents;
		int k;

		if (stat(argv[i], &st) != 0) {
			fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
			return 1;
		}
		if (!S_ISDIR(st.st_mode)) {
			n += run_file(argv[i]);
			continue;
		}
		k = scandir(argv[i], &ents, NULL, by_name);
		if (k < 0) {
			fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
			return 1;
		}
		for (int j = 0; j < k; j++) {
			char path[4096];

			if (ents[j]->d_name[0] != '.') {
				snprintf(path, sizeof(path), "%s/%s", argv[i], ents[j]->d_name);
				n += run_file(path);
			}
			free(ents[j]);
		}
		free(ents);
	}
	printf("replay: %d inputs ran\n", n);
	return n > 0 ? 0 : 1;
}
