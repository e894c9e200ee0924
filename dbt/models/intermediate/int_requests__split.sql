{#- Which requests train and which test: train days D-train_days .. D-1, test day D (vars), and an
    optional sample of users by a hash of user_id, the same users in both splits. Both splits are encoded by
    D's feature spec: the train days as D's bucketize job encoded them again (stg_warehouse__train_features). -#}

with

test_day as (

    select * from {{ ref('stg_warehouse__features') }}
    where ds = {{ edgerec.ds_var() }}

),

train_days as (

    select * from {{ ref('stg_warehouse__train_features') }}
    where spec_ds = {{ edgerec.ds_var() }}
      and ds between {{ edgerec.ds_minus(var('train_days')) }} and {{ edgerec.ds_minus(1) }}

),

features as (

    select * from train_days
    union all
    select * from test_day

),

split as (

    select
        *,
        case when ds = {{ edgerec.ds_var() }} then 'test' else 'train' end as split,
        {{ edgerec.hash_bucket('user_id', var('sample_buckets')) }} as user_bucket,
        {{ edgerec.list_length('cand_item_id') }} as n_candidates,
        {{ edgerec.list_sum('mask') }} as n_labelled,
        {{ edgerec.list_sum('label') }} as n_clicks

    from features

),

final as (

    select * from split
    where user_bucket < {{ var('sample_rate') }} * {{ var('sample_buckets') }}

)

select * from final
