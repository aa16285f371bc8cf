"""Where things go on disk: the TAO and mmaction2 layouts, the dataset record, label maps, lists."""
