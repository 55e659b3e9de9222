"""
Text: TF-IDF vectors, sparse
============================

A small corpus turned into TF-IDF vectors by scikit-learn (a SciPy sparse matrix): kmeans_xp
clusters sparse X as it is, never densified.  The centres come back dense.
"""

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from kmeans_xp import KMeans

docs = [
    "the cat sat on the mat",
    "a cat and a kitten play",
    "my cat chases the kitten",
    "the dog barks at the mailman",
    "a dog and a puppy run",
    "my dog fetches the ball",
    "stocks fell as markets closed",
    "the market rallied on earnings",
    "investors sold stocks",
    "bonds and stocks in the market",
]
vec = TfidfVectorizer(stop_words="english")
X = vec.fit_transform(docs)  # scipy.sparse CSR, L2-normalised rows
km = KMeans(n_clusters=3, random_state=0, n_init=5).fit(X)
terms = np.array(vec.get_feature_names_out())
for c in range(3):
    top = terms[np.argsort(km.cluster_centers_[c])[::-1][:4]]
    members = [d for d, lab in zip(docs, km.labels_) if lab == c]
    print(f"cluster {c}: {', '.join(top)}  <- {len(members)} documents")
