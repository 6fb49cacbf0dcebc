package api

// RecipeArtifactType marks an OCI artifact whose layer is a packed recipe:
// pushing one to pei serve queues a build whose image points back to it
// (subject).
const RecipeArtifactType = "application/vnd.pei.recipe.v1"

// RecipeMediaType is the media type of a packed recipe (a gzipped tar):
// the layer of a recipe artifact, the body of a submission.
const RecipeMediaType = "application/vnd.pei.recipe.v1.tar+gzip"

// Recipe artifact annotations that say what to build.
const (
	AnnotationTag      = "dev.pei.build.tag"
	AnnotationPlatform = "dev.pei.build.platform"
	AnnotationKind     = "dev.pei.build.kind"
	AnnotationStage    = "dev.pei.build.stage"
	AnnotationSecrets  = "dev.pei.build.secrets"
)
