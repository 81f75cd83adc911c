/* net_config.h — the network's own settings: what model_build needs and nothing of the run
 * (data, optimizer, logging). The run's Config (src/config) embeds one as Config.net, so the
 * model builds from a config file without seeing the settings table. */
#ifndef UNET_NET_CONFIG_H
#define UNET_NET_CONFIG_H

typedef struct {
    char preset[16];       /* tiny | base | large | custom */
    int embed_dim;         /* C; from the preset unless custom */
    int heads[4];          /* per encoder stage; from the preset unless custom */
    int patch_size;        /* P: 4 or 8 */
    int windows[4];        /* window per encoder stage (clamped to the stage size at build) */
    int in_channels;
    int classes;           /* including background */
    int deep_supervision;
    int crop[2];           /* H, W of the training patch; fixes the window clamping */
    double drop_path_rate;
} NetConfig;

#endif
