/* ctest-labels: unit */
/* test_chat_template.c: the Jinja chat-template interpreter (chat_template.h) */
#include "test.h"
#include "cinder/chat_template.h"
#include "cinder/status.h"

#include <dirent.h>
#include <stdlib.h>

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    size_t got = fread(s, 1, (size_t)n, f);
    s[got] = 0;
    fclose(f);
    return s;
}

static void test_all_templates(void)
{
    const char *dir = CND_SHARED_DIR "/models/templates";
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    cJSON *msgs = cJSON_Parse("[{\"role\":\"user\",\"content\":\"Hello\"}]");
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 6 || strcmp(e->d_name + l - 6, ".jinja") != 0)
            continue;
        char path[1024], err[CND_ERR_LEN] = "";
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        char *src = read_file(path);
        struct chat_template *t = chat_template_create(src, err);
        CHECK_MSG(t, "%s: parse: %s", e->d_name, err);
        if (t) {
            struct buf out;
            buf_init(&out);
            struct chat_template_params p = {.add_generation_prompt = true, .bos_token = "<s>",
                                             .eos_token = "</s>", .now = 1721952000};
            int rc = chat_template_render(t, msgs, &p, &out, err);
            CHECK_MSG(rc == 0, "%s: render: %s", e->d_name, err);
            if (getenv("SHOW"))
                printf("==== %s\n%s\n", e->d_name, out.data ? out.data : "");
            buf_deinit(&out);
            chat_template_destroy(t);
        }
        free(src);
    }
    cJSON_Delete(msgs);
    closedir(d);
}

int main(void)
{
    RUN(test_all_templates);
    return test_summary();
}
