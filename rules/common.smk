# Helpers shared by the rules.

PREPARED = {
    "omniglot": f"{DATA}/prepared/omniglot.npz",
    "miniimagenet": f"{DATA}/prepared/miniimagenet-train.npz",
}


def image_chunks(wildcards):
    n = config[wildcards.dataset]["chunks"]
    return {
        "grids": [f"results/{wildcards.dataset}/chunks/{i}.csv" for i in range(n)],
        "provenance": [f"results/{wildcards.dataset}/chunks/{i}.json" for i in range(n)],
    }
