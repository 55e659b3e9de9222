"""
The handbook workflow: choose k, fit, plot, label
=================================================

The k-means chapter of a data-science handbook, with nothing but kmeans_xp (and pandas for
the DataFrame): choose k by the elbow and the silhouette, fit, look at the clusters and put
the labels back into the DataFrame.
"""

import kmeans_xp
from kmeans_xp import KMeans, select_k
from kmeans_xp.demo import load_iris
from kmeans_xp.plotting import plot_clusters, plot_elbow, plot_silhouette

df = load_iris(as_frame=True)  # 150 flowers: 4 measurements (cm) and the species
features = ["sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm"]
X = df[features].to_numpy()

# %%
# Choose k: every k is fitted and scored; ``best_k`` is the elbow (Kneedle rule).
result = select_k(X, range(1, 11), random_state=2021)
print(result)
plot_elbow(result, score="silhouette")

# %%
# Fit the chosen k and score it.
km = KMeans(n_clusters=result.best_k, random_state=2021).fit(X)
print("silhouette:", round(kmeans_xp.metrics.silhouette_score(X, km.labels_), 3))
plot_clusters(X, model=km, feature_names=features, columns=("petal_length_cm", "petal_width_cm"))

# %%
# The silhouette diagram: each cluster's silhouettes, sorted, and the average.
plot_silhouette(X, km)

# %%
# Labels back into the DataFrame.
df["cluster"] = km.labels_
print(df.groupby(["cluster", "species"]).size())
