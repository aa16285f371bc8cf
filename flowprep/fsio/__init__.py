"""The one gate between flowprep and the file system: every file it reads or writes passes here.

Reading (:mod:`~flowprep.fsio.reading`)
    Regular files only, opened non-blocking (a FIFO's ``open`` would wait forever for a writer) and
    checked with ``fstat`` on the open descriptor (a file swapped for a device after listing is
    caught too); at most a stated number of bytes per kind of file (``max_bytes``, checked on the
    size and again while reading, since ``/proc`` files and growing files lie about their size).
    JSON is also bounded in nesting depth (:func:`read_json`), and zip containers such as
    PyTorch's ``.pt`` files in their decompression ratio (:func:`check_zip_ratio`).

Symlinks (the one policy)
    A path the user names, and a file of an input flowprep did not write (a release, a model, an
    image folder), is read through symlinks: linking data in is ordinary, and whatever the link
    leads to must still be a regular file within the size limit. A file inside a folder flowprep
    wrote (a dataset's frames, its state and manifest files: ``owned=True``) is never read through
    a symlink, and nothing is ever written or deleted through one below an output folder
    (:func:`make_dirs`, :func:`check_no_link`, :func:`remove_inside`): flowprep writes no symlinks,
    so one found there was put there by someone else and may lead out.

Writing (:mod:`~flowprep.fsio.writing`, :mod:`~flowprep.fsio.owned`, :mod:`~flowprep.fsio.lock`)
    Atomic (a unique temporary sibling, then a rename), never onto a file flowprep does not own: a
    file the user names as an output that exists is refused unless ``--overwrite`` is given, the
    command's own input always (:func:`check_new_file`). What a command writes into an output folder
    is listed in its ownership :class:`Manifest` before it is written, and only what a manifest lists
    is ever replaced or removed. Two runs into one folder are kept apart by a :class:`FolderLock`.

Paths (:mod:`~flowprep.fsio.paths`)
    A path with bytes that are not UTF-8 or control characters is refused where it enters (the
    CLI's path type, the config dataclasses of the library): :func:`check_path`. A name joined to
    an output path must be one plain component: :func:`name_problem`.

Every refusal is one line naming the file, raised as the ``error`` class the caller gives (a
:class:`~flowprep.errors.FlowprepError`), so each command reports it in its own terms.

Enforced by ``tests/test_fsio_gate.py``: a raw open, write, rename or delete anywhere else in the
package fails it unless its ``ALLOWED`` table names that module and call with the reason.
"""
