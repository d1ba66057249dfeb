"""A user's task source becomes the sampler suggest reads: random access, the same batch whatever the order it
is read in, the task axis first, the evaluation batch held apart; what breaks the protocol is one line."""

import random

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from maml_convergence import guideline
from maml_convergence.task_sources import from_loader, tasks_from
from maml_convergence.tasks import EVAL_STREAM, Batch, ProtocolError, SampledTasks

WAYS, SHOTS, QUERIES, TASKS = 5, 1, 3, 4


def classes_dataset(classes=10, per_class=8, seed=0):
    """Examples of ``classes`` classes, ``per_class`` each; an input's first entry is its class."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(classes).repeat_interleave(per_class)
    x = torch.randn(len(y), 1, 4, 4, generator=g)
    x[:, 0, 0, 0] = y.float()
    return x, y


class DocumentedTaskDataset:
    """learn2learn's TaskDataset as documented: sample() draws one task with Python's random module (NWays,
    KShots), loads its examples and remaps its labels to 0..ways-1; it returns [X, y]."""

    def __init__(self, x, y, ways, examples_per_class):
        self.x, self.y, self.ways, self.k = x, y, ways, examples_per_class

    def sample(self):
        classes = random.sample(sorted(set(self.y.tolist())), self.ways)
        index = [i for c in classes for i in random.sample(torch.nonzero(self.y == c).flatten().tolist(), self.k)]
        return [self.x[index], torch.arange(self.ways).repeat_interleave(self.k)]

    def __len__(self):  # TaskDatasets have a length and item access too: sample() decides
        return 1

    def __getitem__(self, k):
        return self.sample()


def batch_list(n=4):
    g = torch.Generator().manual_seed(1)
    return [tuple(torch.randn(3, 5, 1, generator=g) for _ in range(4)) for _ in range(n)]


def same(a: Batch, b: Batch) -> bool:
    return all(torch.equal(getattr(a, f), getattr(b, f)) for f in ("xs", "ys", "xq", "yq"))


def test_a_sequence_holds_its_first_batch_apart_and_cycles_the_rest():
    batches = batch_list(4)
    sample = tasks_from(batches)
    assert same(sample(EVAL_STREAM), Batch(*batches[0]))
    assert [same(sample(i), Batch(*batches[1 + i % 3])) for i in (0, 1, 2, 3, 2**20 + 5)] == [True] * 5
    with pytest.raises(ProtocolError, match="at least 2"):
        tasks_from(batches[:1])
    broken = batches[:2] + [(batches[2][0], batches[2][1][:2], batches[2][2], batches[2][3])]
    with pytest.raises(ProtocolError, match="meta-batch 2 of the sequence.*task axes differ"):
        tasks_from(broken)


def test_suggest_takes_a_list_of_meta_batches_as_it_is():
    """The list case that stopped suggest before: now it is a sampler like any other."""
    sampled = guideline._checked_sampler(batch_list(3))
    assert isinstance(sampled, SampledTasks) and sampled.sample(EVAL_STREAM).xs.shape == (3, 5, 1)
    with pytest.raises(ProtocolError, match="tasks_from needs shots= for a TaskDataset.*guideline.tasks_from"):
        guideline._checked_sampler(DocumentedTaskDataset(*classes_dataset(), WAYS, 2))


def check_few_shot(sample, ways=WAYS, shots=SHOTS, queries=QUERIES, tasks=TASKS):
    b = sample(3)
    assert b.xs.shape == (tasks, ways * shots, 1, 4, 4) and b.xq.shape == (tasks, ways * queries, 1, 4, 4)
    assert b.ys.dtype == torch.int64 and sorted(b.ys[0].tolist()) == sorted(list(range(ways)) * shots)
    for t in range(tasks):  # a label means one class in support and query, and no example is in both
        for c in range(ways):
            classes = set(b.xs[t, b.ys[t] == c, 0, 0, 0].tolist()) | set(b.xq[t, b.yq[t] == c, 0, 0, 0].tolist())
            assert len(classes) == 1
        support = {tuple(v.flatten().tolist()) for v in b.xs[t]}
        assert not support & {tuple(v.flatten().tolist()) for v in b.xq[t]}
    later = sample(2**20 + 7)
    assert same(sample(3), b) and not same(later, b)  # random access: the same whatever was read between


def test_a_task_dataset_is_seeded_per_batch_split_per_class_and_leaves_the_global_generators_alone():
    x, y = classes_dataset()
    sample = tasks_from(DocumentedTaskDataset(x, y, WAYS, SHOTS + QUERIES), shots=SHOTS, tasks_per_batch=TASKS)
    random.seed(11), np.random.seed(11), torch.manual_seed(11)
    states = random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state()
    check_few_shot(sample)
    assert random.getstate() == states[0] and np.array_equal(np.random.get_state()[1], states[1])
    assert torch.equal(torch.get_rng_state(), states[2])
    assert not same(tasks_from(DocumentedTaskDataset(x, y, WAYS, SHOTS + QUERIES), shots=SHOTS, tasks_per_batch=TASKS,
                               seed=1)(3), sample(3))
    with pytest.raises(ProtocolError, match="class 0 has 1 examples; shots = 1 leaves none for the query"):
        tasks_from(DocumentedTaskDataset(x, y, WAYS, 1), shots=1, tasks_per_batch=2)(0)


def test_the_real_learn2learn_task_dataset():
    l2l = pytest.importorskip("learn2learn", reason="learn2learn is not installed (an optional test dependency)")
    x, y = classes_dataset()
    meta = l2l.data.MetaDataset(TensorDataset(x, y))
    taskset = l2l.data.TaskDataset(meta, task_transforms=[
        l2l.data.transforms.NWays(meta, WAYS), l2l.data.transforms.KShots(meta, SHOTS + QUERIES),
        l2l.data.transforms.LoadData(meta), l2l.data.transforms.RemapLabels(meta)], num_tasks=-1)
    check_few_shot(tasks_from(taskset, shots=SHOTS, tasks_per_batch=TASKS))


def test_a_meta_dataloader_is_read_once_as_a_sequence():
    def loader():  # torchmeta's BatchMetaDataLoader yields {"train": [x, y], "test": [x, y]}, the task axis first
        for k in range(100):
            g = torch.Generator().manual_seed(k)
            yield {"train": [torch.randn(2, 5, 3, generator=g), torch.arange(5).repeat(2, 1)],
                   "test": [torch.randn(2, 10, 3, generator=g), torch.arange(5).repeat(2, 2)]}
    read = iter(loader())
    sample = from_loader(read, batches=3)
    first = list(loader())[:4]
    assert torch.equal(sample(EVAL_STREAM).xs, first[0]["train"][0]) and torch.equal(sample(4).xq, first[2]["test"][0])
    assert torch.equal(next(read)["train"][0], list(loader())[4]["train"][0])  # read 4, no more
    with pytest.raises(ProtocolError, match="gave 4 meta-batches; 9 \\+ 1"):
        tasks_from(iter(list(loader())[:4]), batches=9)
    with pytest.raises(ProtocolError, match="tasks_from needs batches= for a meta-dataloader"):
        tasks_from(loader())


def test_an_x_y_dataset_gives_n_way_k_shot_tasks_with_and_without_its_targets():
    x, y = classes_dataset()
    check_few_shot(tasks_from(TensorDataset(x, y), ways=WAYS, shots=SHOTS, queries=QUERIES, tasks_per_batch=TASKS))

    class WithTargets(TensorDataset):  # as torchvision's datasets: labels readable without loading the images
        targets = y.tolist()
    labelled = tasks_from(WithTargets(x, y), ways=WAYS, shots=SHOTS, queries=QUERIES, tasks_per_batch=TASKS)
    assert same(labelled(3), tasks_from(TensorDataset(x, y), ways=WAYS, shots=SHOTS, queries=QUERIES,
                                        tasks_per_batch=TASKS)(3))
    with pytest.raises(ProtocolError, match="10 classes with at least shots \\+ queries = 8 examples; 11-way"):
        tasks_from(TensorDataset(x, y), ways=11, shots=1, queries=7, tasks_per_batch=1)
    with pytest.raises(ProtocolError, match="queries must be an integer >= 1, got 0"):
        tasks_from(TensorDataset(x, y), ways=2, shots=1, queries=0, tasks_per_batch=1)
    images = [(np.zeros((4, 4)), int(c)) for c in y]  # a dataset without a ToTensor transform
    with pytest.raises(ProtocolError, match="input is a ndarray, not a tensor.*ToTensor"):
        tasks_from(images, ways=2, shots=1, queries=1, tasks_per_batch=1)(0)


def test_what_is_no_task_source_is_one_line():
    with pytest.raises(ProtocolError, match="cannot read tasks from a int"):
        tasks_from(3)
    with pytest.raises(ProtocolError, match="items are a tuple of 3"):
        tasks_from([(torch.zeros(1), torch.zeros(1), torch.zeros(1))])
    with pytest.raises(ProtocolError, match="TaskDataset.sample\\(\\) must return \\(X, y\\) tensors"):
        tasks_from(type("T", (), {"sample": lambda self: "x"})(), shots=1, tasks_per_batch=1)(0)
