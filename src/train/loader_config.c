/* loader_config.c — LoaderOptions from a run's Config (the augment and loader sections). */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "loader_config.h"

int loader_options_from_config(LoaderOptions *o, const Config *cfg, int rank, int world, char *err, size_t err_len) {
    loader_options_default(o, cfg->net.crop[0], cfg->net.crop[1], cfg->batch_size);
    AugmentParams *a = &o->aug;
    if (cfg->aug_enlarged[0] > 0 || cfg->aug_enlarged[1] > 0) {
        a->enlarged[0] = cfg->aug_enlarged[0] > 0 ? cfg->aug_enlarged[0] : a->enlarged[0];
        a->enlarged[1] = cfg->aug_enlarged[1] > 0 ? cfg->aug_enlarged[1] : a->enlarged[1];
    }
    a->p_rotation = cfg->aug_p_rotation, a->rotation_deg[0] = cfg->aug_rotation_min, a->rotation_deg[1] = cfg->aug_rotation_max;
    a->p_scale = cfg->aug_p_scale, a->scale[0] = cfg->aug_scale_min, a->scale[1] = cfg->aug_scale_max;
    a->p_noise = cfg->aug_p_noise, a->noise_std[0] = cfg->aug_noise_std_min, a->noise_std[1] = cfg->aug_noise_std_max;
    a->p_blur = cfg->aug_p_blur, a->p_blur_channel = cfg->aug_p_blur_channel;
    a->blur_sigma[0] = cfg->aug_blur_sigma_min, a->blur_sigma[1] = cfg->aug_blur_sigma_max;
    a->p_brightness = cfg->aug_p_brightness, a->brightness[0] = cfg->aug_brightness_min, a->brightness[1] = cfg->aug_brightness_max;
    a->p_contrast = cfg->aug_p_contrast, a->contrast[0] = cfg->aug_contrast_min, a->contrast[1] = cfg->aug_contrast_max;
    a->p_lowres = cfg->aug_p_lowres, a->p_lowres_channel = cfg->aug_p_lowres_channel;
    a->lowres_zoom[0] = cfg->aug_lowres_zoom_min, a->lowres_zoom[1] = cfg->aug_lowres_zoom_max;
    a->p_gamma_inverted = cfg->aug_p_gamma_inverted, a->p_gamma = cfg->aug_p_gamma;
    a->gamma[0] = cfg->aug_gamma_min, a->gamma[1] = cfg->aug_gamma_max;
    a->p_mirror[0] = cfg->aug_p_mirror_y, a->p_mirror[1] = cfg->aug_p_mirror_x;
    o->workers = cfg->loader_workers, o->prefetch = cfg->loader_prefetch;
    o->rank = rank, o->world = world;
    o->seed = (uint64_t)cfg->seed;
    char msg[400];
    if (augment_params_check(a, msg, sizeof msg) != 0) {
        snprintf(err, err_len, "%s: %s", cfg->path, msg);
        return -1;
    }
    return 0;
}
